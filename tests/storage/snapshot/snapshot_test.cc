#include "storage/snapshot/snapshot.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "amld/v1/common.pb.h"
#include "storage/cas.h"
#include "storage/digest.h"
#include "tests/testing/test_util.h"

namespace amld::storage {
namespace {

namespace fs = std::filesystem;
using amld::testing::ReadFile;
using amld::testing::WriteFile;
using amld::v1::Directory;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;
using ::testing::UnorderedElementsAre;
using ::testing::UnorderedElementsAreArray;

void Symlink(const std::string& target, const fs::path& link) {
  fs::create_directories(link.parent_path());
  ASSERT_EQ(::symlink(target.c_str(), link.c_str()), 0) << link;
}

// Every entry below `root` as "kind mode content-or-target", by relative path.
std::map<std::string, std::string> Describe(const fs::path& root) {
  std::map<std::string, std::string> out;
  for (auto it = fs::recursive_directory_iterator(root); it != fs::recursive_directory_iterator();
       ++it) {
    std::string rel = it->path().lexically_relative(root).string();
    struct stat st;
    EXPECT_EQ(::lstat(it->path().c_str(), &st), 0);
    char mode[8];
    std::snprintf(mode, sizeof mode, "%03o", st.st_mode & 07777);
    if (S_ISLNK(st.st_mode)) {
      out[rel] = "link " + fs::read_symlink(it->path()).string();
    } else if (S_ISDIR(st.st_mode)) {
      out[rel] = absl::StrCat("dir ", mode);
    } else {
      out[rel] = absl::StrCat("file ", mode, " ", ReadFile(it->path()));
    }
  }
  return out;
}

struct Entry {
  std::string path;
  std::string content;
  mode_t mode = 0644;
};

std::vector<Entry> SampleTree() {
  std::vector<Entry> tree = {
      {"train.py", "print('hi')\n", 0755},
      {"README", "readme", 0644},
      {"empty.txt", "", 0644},
      {"src/model.py", "class Model: pass\n", 0644},
      {"src/util/io.py", "def read(): ...\n", 0644},
      {"src/util/run.sh", "#!/bin/sh\n", 0700},
      {"data/a.csv", "1,2,3\n", 0600},
  };
  for (int i = 0; i < 30; ++i) {
    tree.push_back({absl::StrCat("many/f", i), absl::StrCat("content ", i % 7), 0644});
  }
  return tree;
}

class SnapshotTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto cas = ContentStore::Open(tmp_ / "cas");
    ASSERT_TRUE(cas.ok()) << cas.status();
    cas_ = std::move(*cas);
  }

  fs::path MakeTree(const std::string& name, const std::vector<Entry>& entries) {
    fs::path dir = tmp_ / name;
    fs::create_directories(dir);
    for (const Entry& e : entries) WriteFile(dir / e.path, e.content, e.mode);
    return dir;
  }

  Snapshot Build(const fs::path& dir, BuildOptions options = {}) {
    absl::StatusOr<Snapshot> snap = BuildSnapshot(dir, options);
    EXPECT_TRUE(snap.ok()) << snap.status();
    return snap.ok() ? *std::move(snap) : Snapshot{};
  }

  // Stores `dir` as a raw Directory blob (no checks), returning its digest.
  Digest PutDirectory(const Directory& dir) {
    absl::StatusOr<Digest> d = cas_->Put(EncodeDirectory(dir));
    EXPECT_TRUE(d.ok()) << d.status();
    return d.ok() ? *d : Digest{};
  }

  amld::testing::TempDir tmp_dir_{"snapshot_test."};
  const fs::path tmp_ = tmp_dir_.path();
  // A second scratch folder, on tmpfs where there is one: another file
  // system lists folders in another order and refuses copy_file_range
  // from this one.
  amld::testing::TempDir other_dir_{"snapshot_test_other.",
                                    fs::is_directory("/dev/shm") ? fs::path("/dev/shm") : tmp_};
  const fs::path other_fs_ = other_dir_.path();
  std::unique_ptr<ContentStore> cas_;
};

// ------------------------------------------------------------- determinism

TEST_F(SnapshotTest, EmptyFolderIsTheEmptyBlob) {
  fs::create_directories(tmp_ / "empty");
  Snapshot snap = Build(tmp_ / "empty");
  EXPECT_EQ(snap.root, Digest::Empty());
  EXPECT_THAT(snap.files, IsEmpty());
  EXPECT_EQ(snap.directories.size(), 1u);
}

TEST_F(SnapshotTest, RootIsTheCanonicalDirectoryBuiltByHand) {
  fs::path dir = MakeTree("src", {{"b.sh", "x", 0755}, {"a.txt", "hello", 0644}, {"sub/c", "cc"}});
  Symlink("a.txt", dir / "l");
  Snapshot snap = Build(dir);

  Directory sub;
  auto* c = sub.add_files();
  c->set_name("c");
  ToProto(DigestOf("cc"), c->mutable_digest());
  Directory root;
  auto* a = root.add_files();
  a->set_name("a.txt");
  ToProto(DigestOf("hello"), a->mutable_digest());
  auto* b = root.add_files();
  b->set_name("b.sh");
  ToProto(DigestOf("x"), b->mutable_digest());
  b->set_is_executable(true);
  auto* s = root.add_directories();
  s->set_name("sub");
  ToProto(DigestOf(EncodeDirectory(sub)), s->mutable_digest());
  auto* l = root.add_symlinks();
  l->set_name("l");
  l->set_target("a.txt");

  EXPECT_EQ(snap.root, DigestOf(EncodeDirectory(root)));
  ASSERT_EQ(snap.directories.size(), 2u);
  EXPECT_EQ(snap.directories.at(snap.root), EncodeDirectory(root));
  EXPECT_EQ(snap.directories.at(DigestOf(EncodeDirectory(sub))), EncodeDirectory(sub));
  ASSERT_EQ(snap.files.size(), 3u);
  EXPECT_EQ(snap.files[0].rel_path, "a.txt");
  EXPECT_EQ(snap.files[1].rel_path, "b.sh");
  EXPECT_TRUE(snap.files[1].executable);
  EXPECT_EQ(snap.files[2].rel_path, "sub/c");
  EXPECT_EQ(snap.files[2].abs_path, fs::absolute(dir / "sub/c"));
  EXPECT_EQ(snap.total_file_bytes, 8);
}

TEST_F(SnapshotTest, SameContentGivesSameDigestWhateverTheOrderAndThreads) {
  std::vector<Entry> tree = SampleTree();
  fs::path first = MakeTree("first", tree);
  std::vector<Entry> reversed(tree.rbegin(), tree.rend());
  // Another file system, and leftover entries created and removed between
  // the others, change the order readdir returns in the second folder.
  fs::path second = other_fs_ / "second";
  for (const Entry& e : reversed) {
    WriteFile(second / (e.path + ".tmp"), "junk");
    WriteFile(second / e.path, e.content, e.mode);
  }
  for (const Entry& e : reversed) fs::remove(second / (e.path + ".tmp"));
  fs::create_directories(first / "empty/nested");
  fs::create_directories(second / "empty/nested");

  Snapshot one = Build(first, {.threads = 1});
  Snapshot four = Build(second, {.threads = 4});
  EXPECT_EQ(one.root, four.root);
  EXPECT_EQ(Build(first, {.threads = 4}).root, one.root);
  EXPECT_EQ(Build(second, {.threads = 0}).root, one.root);
  ASSERT_EQ(one.files.size(), four.files.size());
  for (size_t i = 0; i < one.files.size(); ++i) {
    EXPECT_EQ(one.files[i].rel_path, four.files[i].rel_path);
    EXPECT_EQ(one.files[i].digest, four.files[i].digest);
  }
  EXPECT_TRUE(std::is_sorted(one.files.begin(), one.files.end(),
                             [](const auto& a, const auto& b) { return a.rel_path < b.rel_path; }));
}

TEST_F(SnapshotTest, ManyFoldersWalkedByThreadsGiveTheSameSnapshotAndTheSameFirstError) {
  // Wider than the walker's queue (256 folders), so folders are walked both
  // from the queue and inline by the thread that found them.
  std::vector<Entry> tree;
  for (int d = 0; d < 300; ++d) {
    tree.push_back({absl::StrCat("d", d, "/f"), absl::StrCat("file ", d)});
    if (d % 7 == 0) tree.push_back({absl::StrCat("d", d, "/sub/g.log"), "ignored"});
  }
  tree.push_back({".amlignore", "*.log\n"});
  fs::path dir = MakeTree("wide", tree);
  Snapshot one = Build(dir, {.threads = 1});
  ASSERT_EQ(one.files.size(), 301u);  // 300 files and .amlignore
  for (int threads : {2, 4, 4, 4}) {
    Snapshot many = Build(dir, {.threads = threads});
    EXPECT_EQ(many.root, one.root);
    ASSERT_EQ(many.files.size(), one.files.size());
    ASSERT_EQ(many.skipped.size(), one.skipped.size());
    for (size_t i = 0; i < one.skipped.size(); ++i) {
      EXPECT_EQ(many.skipped[i].rel_path, one.skipped[i].rel_path);
    }
  }
  // Two bad names: whichever thread finds which first, the one reported is
  // the first in name order, as a one-thread walk reports it.
  WriteFile(dir / "d150/bad\xff", "x");
  WriteFile(dir / "d20/bad\xff", "x");  // "d150" < "d20" in byte order
  for (int threads : {1, 2, 4, 4, 4}) {
    absl::StatusOr<Snapshot> snap = BuildSnapshot(dir, {.threads = threads});
    ASSERT_FALSE(snap.ok());
    EXPECT_THAT(std::string(snap.status().message()), HasSubstr("d150/bad")) << threads;
  }
}

TEST_F(SnapshotTest, OneByteOrExecuteBitChangesTheDigest) {
  fs::path dir = MakeTree("src", SampleTree());
  const Digest base = Build(dir).root;

  WriteFile(dir / "src/util/io.py", "def read(): ..,\n");
  const Digest byte_changed = Build(dir).root;
  EXPECT_NE(byte_changed, base);
  WriteFile(dir / "src/util/io.py", "def read(): ...\n");
  EXPECT_EQ(Build(dir).root, base);

  ASSERT_EQ(::chmod((dir / "src/model.py").c_str(), 0744), 0);
  const Digest user_x = Build(dir).root;
  EXPECT_NE(user_x, base);
  ASSERT_EQ(::chmod((dir / "src/model.py").c_str(), 0645), 0);
  EXPECT_EQ(Build(dir).root, user_x) << "any execute bit counts as executable";
  ASSERT_EQ(::chmod((dir / "src/model.py").c_str(), 0600), 0);
  EXPECT_EQ(Build(dir).root, base) << "only the execute bit is recorded";

  fs::rename(dir / "README", dir / "README.md");
  EXPECT_NE(Build(dir).root, base);
}

// ----------------------------------------------------------- materializing

TEST_F(SnapshotTest, MaterializeReproducesTheFolder) {
  std::vector<Entry> tree = SampleTree();
  std::string big(300000, '\0');
  std::mt19937 rng(7);
  for (char& ch : big) ch = static_cast<char>(rng());
  tree.push_back({"weights/big.bin", big, 0644});
  fs::path src = MakeTree("src", tree);
  fs::create_directories(src / "results");
  fs::create_directories(src / "a/b/c/d");
  Symlink("../README", src / "src/readme-link");
  Symlink("src/util", src / "util-link");
  Symlink("does-not-exist", src / "dangling");
  // Normalize the folders' modes to what Materialize creates.
  for (auto& e : fs::recursive_directory_iterator(src)) {
    if (e.is_directory() && !e.is_symlink()) ::chmod(e.path().c_str(), 0755);
  }
  for (const Entry& e : tree) ::chmod((src / e.path).c_str(), (e.mode & 0111) ? 0755 : 0644);

  Snapshot snap = Build(src);
  ASSERT_TRUE(StoreSnapshot(snap, *cas_).ok());
  fs::path dest = tmp_ / "run/dest";
  absl::Status st = Materialize(*cas_, snap.root, dest);
  ASSERT_TRUE(st.ok()) << st;

  EXPECT_EQ(Describe(dest), Describe(src));
  EXPECT_EQ(Describe(dest).at("results"), "dir 755");
  EXPECT_EQ(Describe(dest).at("src/util/run.sh"), "file 755 #!/bin/sh\n");
  EXPECT_EQ(Describe(dest).at("util-link"), "link src/util");
  EXPECT_EQ(Build(dest).root, snap.root);
}

TEST_F(SnapshotTest, MaterializedFilesNeverShareTheStoredObject) {
  fs::path src = MakeTree("src", {{"model.py", "weights = 1\n"}});
  Snapshot snap = Build(src);
  ASSERT_TRUE(StoreSnapshot(snap, *cas_).ok());
  fs::path dest = tmp_ / "dest";
  ASSERT_TRUE(Materialize(*cas_, snap.root, dest).ok());

  const Digest d = DigestOf("weights = 1\n");
  struct stat object, copy;
  ASSERT_EQ(::stat(cas_->ObjectPath(d).c_str(), &object), 0);
  ASSERT_EQ(::stat((dest / "model.py").c_str(), &copy), 0);
  EXPECT_NE(object.st_ino, copy.st_ino);
  EXPECT_EQ(object.st_nlink, 1u);
  WriteFile(dest / "model.py", "weights = 2\n", 0644);  // the run writes its copy
  EXPECT_TRUE(cas_->Verify(d).ok());
  EXPECT_EQ(*cas_->Read(d), "weights = 1\n");
}

TEST_F(SnapshotTest, MaterializeCopiesAcrossFileSystems) {
  // copy_file_range refuses to cross file systems (EXDEV); the read/write
  // fallback must then produce the same bytes.
  std::string big(1 << 20, '\0');
  std::mt19937 rng(11);
  for (char& ch : big) ch = static_cast<char>(rng());
  fs::path src = MakeTree("src", {{"big.bin", big, 0755}, {"small", "s"}});
  Snapshot snap = Build(src);
  ASSERT_TRUE(StoreSnapshot(snap, *cas_).ok());
  fs::path dest = other_fs_ / "run";
  absl::Status st = Materialize(*cas_, snap.root, dest);
  EXPECT_TRUE(st.ok()) << st;
  EXPECT_EQ(ReadFile(dest / "big.bin"), big);
  EXPECT_EQ(ReadFile(dest / "small"), "s");
  EXPECT_EQ(Build(dest).root, snap.root);
}

TEST_F(SnapshotTest, MaterializeNeedsAnEmptyDestAndEveryBlob) {
  fs::path src = MakeTree("src", {{"a", "aaa"}, {"sub/b", "bbb"}});
  Snapshot snap = Build(src);
  fs::path busy = tmp_ / "busy";
  WriteFile(busy / "already-here", "x");
  ASSERT_TRUE(StoreSnapshot(snap, *cas_).ok());
  EXPECT_EQ(Materialize(*cas_, snap.root, busy).code(), absl::StatusCode::kFailedPrecondition);

  fs::remove(cas_->ObjectPath(DigestOf("bbb")));
  absl::Status st = Materialize(*cas_, snap.root, tmp_ / "dest");
  EXPECT_EQ(st.code(), absl::StatusCode::kNotFound) << st;
  EXPECT_THAT(std::string(st.message()), HasSubstr(DigestOf("bbb").ToString()));
}

TEST_F(SnapshotTest, MaterializeOfABadTreeWritesNothingOutsideDest) {
  Directory payload;
  auto* f = payload.add_files();
  f->set_name("pwned");
  ASSERT_TRUE(cas_->Put("owned").ok());
  ToProto(DigestOf("owned"), f->mutable_digest());
  const Digest payload_digest = PutDirectory(payload);

  Directory dotdot;  // a child named ".."
  auto* up = dotdot.add_directories();
  up->set_name("..");
  ToProto(payload_digest, up->mutable_digest());

  Directory escaping_link;  // "../x" in the root
  auto* l = escaping_link.add_symlinks();
  l->set_name("out");
  l->set_target("../x");

  Directory deep_link;  // valid at depth 2, not at depth 1 where it is used
  auto* l2 = deep_link.add_symlinks();
  l2->set_name("out");
  l2->set_target("../../x");
  Directory holds_deep_link;
  auto* sub = holds_deep_link.add_directories();
  sub->set_name("sub");
  ToProto(PutDirectory(deep_link), sub->mutable_digest());

  for (const Directory* bad : {&dotdot, &escaping_link, &holds_deep_link}) {
    fs::path parent = tmp_ / "parent";
    fs::remove_all(parent);
    fs::create_directories(parent);
    absl::Status st = Materialize(*cas_, PutDirectory(*bad), parent / "dest");
    EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument) << st;
    EXPECT_FALSE(fs::exists(tmp_ / "pwned"));
    EXPECT_FALSE(fs::exists(parent / "pwned"));
    EXPECT_FALSE(fs::exists(parent / "x"));
    EXPECT_FALSE(fs::is_symlink(parent / "dest/out"));
    EXPECT_FALSE(fs::is_symlink(parent / "dest/sub/out"));
  }
}

// ----------------------------------------------------------------- symlinks

TEST_F(SnapshotTest, SymlinksOutOfTheTreeAreRefusedAtBuild) {
  struct Case {
    std::string link;
    std::string target;
  };
  for (const Case& c : std::vector<Case>{{"abs", "/etc/passwd"},
                                         {"up", "../outside"},
                                         {"sub/up2", "../../outside"},
                                         {"sub/deep/up3", "../../../x"},
                                         {"through", "sub/../../x"},
                                         {"via-name", "a/../b"}}) {
    fs::path dir = tmp_ / "src";
    fs::remove_all(dir);
    WriteFile(dir / "file", "x");
    Symlink(c.target, dir / c.link);
    absl::StatusOr<Snapshot> snap = BuildSnapshot(dir);
    EXPECT_EQ(snap.status().code(), absl::StatusCode::kInvalidArgument) << c.link;
    EXPECT_THAT(std::string(snap.status().message()), HasSubstr(c.link));
  }
}

TEST_F(SnapshotTest, SymlinksInsideTheTreeAreKeptNotFollowed) {
  fs::path dir = MakeTree("src", {{"file", "x"}, {"sub/deep/f", "y"}});
  Symlink("../file", dir / "sub/up");
  Symlink("../../file", dir / "sub/deep/up2");
  Symlink("./file", dir / "dot");
  Symlink("sub/deep", dir / "dirlink");
  Symlink("nowhere", dir / "dangling");
  Snapshot snap = Build(dir);
  std::vector<std::string> files;
  for (const SnapshotFile& f : snap.files) files.push_back(f.rel_path);
  EXPECT_THAT(files, ElementsAre("file", "sub/deep/f"));
  absl::StatusOr<Directory> root = DecodeDirectory(snap.directories.at(snap.root));
  ASSERT_TRUE(root.ok());
  ASSERT_EQ(root->symlinks_size(), 3);
  EXPECT_EQ(root->symlinks(0).name(), "dangling");
  EXPECT_EQ(root->symlinks(1).name(), "dirlink");
  EXPECT_EQ(root->symlinks(1).target(), "sub/deep");
}

TEST_F(SnapshotTest, IgnoredEscapingLinkIsNoError) {
  fs::path dir = MakeTree("src", {{".amlignore", "escape\n"}, {"f", "x"}});
  Symlink("/etc", dir / "escape");
  Snapshot snap = Build(dir);
  ASSERT_EQ(snap.skipped.size(), 1u);
  EXPECT_EQ(snap.skipped[0].rel_path, "escape");
}

// -------------------------------------------------------------- decoding

Directory OneFile(const std::string& name) {
  Directory d;
  auto* f = d.add_files();
  f->set_name(name);
  ToProto(Digest::Empty(), f->mutable_digest());
  return d;
}

TEST(DecodeDirectoryTest, AcceptsCanonicalDirectories) {
  Directory d;
  for (const char* name : {"A", "a", "b.txt"}) {
    auto* f = d.add_files();
    f->set_name(name);
    ToProto(DigestOf(name), f->mutable_digest());
  }
  auto* sub = d.add_directories();
  sub->set_name("dir");
  ToProto(Digest::Empty(), sub->mutable_digest());
  auto* l = d.add_symlinks();
  l->set_name("link");
  l->set_target("dir/x");
  absl::StatusOr<Directory> back = DecodeDirectory(EncodeDirectory(d));
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(EncodeDirectory(*back), EncodeDirectory(d));
}

TEST(DecodeDirectoryTest, RefusesBadNames) {
  for (std::string name : {std::string(""), std::string("."), std::string(".."), std::string("a/b"),
                           std::string("a\0b", 3), std::string(256, 'n')}) {
    Directory files = OneFile(name);
    EXPECT_EQ(DecodeDirectory(EncodeDirectory(files)).status().code(),
              absl::StatusCode::kInvalidArgument)
        << "file " << name;
    Directory dirs;
    auto* d = dirs.add_directories();
    d->set_name(name);
    ToProto(Digest::Empty(), d->mutable_digest());
    EXPECT_EQ(DecodeDirectory(EncodeDirectory(dirs)).status().code(),
              absl::StatusCode::kInvalidArgument)
        << "directory " << name;
    Directory links;
    auto* l = links.add_symlinks();
    l->set_name(name);
    l->set_target("x");
    EXPECT_EQ(DecodeDirectory(EncodeDirectory(links)).status().code(),
              absl::StatusCode::kInvalidArgument)
        << "symlink " << name;
  }
}

TEST(DecodeDirectoryTest, RefusesUnsortedAndDuplicateNames) {
  Directory unsorted = OneFile("b");
  unsorted.MergeFrom(OneFile("a"));
  absl::Status st = DecodeDirectory(EncodeDirectory(unsorted)).status();
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(st.message()), HasSubstr("not sorted"));

  Directory repeated = OneFile("a");
  repeated.MergeFrom(OneFile("a"));
  st = DecodeDirectory(EncodeDirectory(repeated)).status();
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(st.message()), HasSubstr("repeated"));

  Directory across = OneFile("same");
  auto* l = across.add_symlinks();
  l->set_name("same");
  l->set_target("x");
  st = DecodeDirectory(EncodeDirectory(across)).status();
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(st.message()), HasSubstr("twice"));

  Directory dirs;
  for (const char* name : {"z", "y"}) {
    auto* d = dirs.add_directories();
    d->set_name(name);
    ToProto(Digest::Empty(), d->mutable_digest());
  }
  EXPECT_EQ(DecodeDirectory(EncodeDirectory(dirs)).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(DecodeDirectoryTest, ChecksLinkTargetsAgainstDepth) {
  auto with_link = [](const std::string& target) {
    Directory d;
    auto* l = d.add_symlinks();
    l->set_name("l");
    l->set_target(target);
    return EncodeDirectory(d);
  };
  EXPECT_EQ(DecodeDirectory(with_link("../x"), 0).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(DecodeDirectory(with_link("../x"), 1).ok());
  EXPECT_TRUE(DecodeDirectory(with_link("../../x"), 2).ok());
  EXPECT_FALSE(DecodeDirectory(with_link("../../x"), 1).ok());
  EXPECT_FALSE(DecodeDirectory(with_link("/etc/passwd"), 5).ok());
  EXPECT_FALSE(DecodeDirectory(with_link("a/../../x"), 5).ok());
  EXPECT_FALSE(DecodeDirectory(with_link(""), 0).ok());
  EXPECT_TRUE(DecodeDirectory(with_link("./a//b/."), 0).ok());
  EXPECT_FALSE(DecodeDirectory(with_link("x"), -1).ok());
}

TEST(DecodeDirectoryTest, RefusesMalformedDigestsAndBytes) {
  Directory d;
  auto* f = d.add_files();
  f->set_name("f");
  f->mutable_digest()->set_hash("../../../etc/passwd");
  EXPECT_EQ(DecodeDirectory(EncodeDirectory(d)).status().code(),
            absl::StatusCode::kInvalidArgument);
  Directory no_digest;
  no_digest.add_directories()->set_name("sub");
  EXPECT_EQ(DecodeDirectory(EncodeDirectory(no_digest)).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(DecodeDirectory("\xff\xff\xff garbage").status().code(),
            absl::StatusCode::kInvalidArgument);
}

// Found by directory_fuzz: bytes that parse to a valid Directory but are not
// its canonical encoding (an unknown field, a field given twice, fields out
// of order) were accepted, so two different blobs — two digests — stood for
// one tree.
TEST(DecodeDirectoryTest, RefusesEncodingsThatAreNotCanonical) {
  Directory d;
  auto* f = d.add_files();
  f->set_name("f");
  ToProto(DigestOf("f"), f->mutable_digest());
  const std::string canonical = EncodeDirectory(d);
  ASSERT_TRUE(DecodeDirectory(canonical).ok());
  // Field 15, varint 61: unknown to amld.v1.Directory.
  const std::string unknown_field = canonical + std::string("\x78\x3d", 2);
  absl::StatusOr<Directory> back = DecodeDirectory(unknown_field);
  EXPECT_EQ(back.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(back.status().message()), HasSubstr("canonical"));
  // The same FileNode's digest field given twice (the last one wins when
  // parsing): same tree, other bytes.
  amld::v1::FileNode only_digest;
  ToProto(DigestOf("f"), only_digest.mutable_digest());
  Directory twice_parsed;
  ASSERT_TRUE(twice_parsed.ParseFromString(canonical));
  std::string node = twice_parsed.files(0).SerializeAsString() +
                     only_digest.SerializeAsString();
  std::string twice = "\x0a";  // field 1 (files), length-delimited
  for (size_t n = node.size(); ; n >>= 7) {  // the length, as a varint
    twice += static_cast<char>((n & 0x7f) | (n >= 0x80 ? 0x80 : 0));
    if (n < 0x80) break;
  }
  twice += node;
  ASSERT_TRUE(twice_parsed.ParseFromString(twice));
  EXPECT_EQ(EncodeDirectory(twice_parsed), canonical);
  EXPECT_EQ(DecodeDirectory(twice).status().code(), absl::StatusCode::kInvalidArgument);
}

// ------------------------------------------------------- trees in the store

TEST_F(SnapshotTest, FindMissingInTreeListsWhatIsAbsentAndHidesBelowMissingDirs) {
  fs::path dir = MakeTree("src", {{"f1", "one"},
                                  {"same-as-f1", "one"},
                                  {"sub1/f2", "two"},
                                  {"sub1/subsub/f3", "three"},
                                  {"sub2/f4", "four"}});
  Snapshot snap = Build(dir);
  auto dir_digest = [&](const std::string& rel) -> Digest {
    Digest current = snap.root;
    size_t start = 0;
    while (start < rel.size()) {
      size_t end = std::min(rel.find('/', start), rel.size());
      Directory d = *DecodeDirectory(snap.directories.at(current));
      for (const auto& n : d.directories()) {
        if (n.name() == rel.substr(start, end - start)) current = FromProto(n.digest());
      }
      start = end + 1;
    }
    return current;
  };
  const Digest sub1 = dir_digest("sub1"), subsub = dir_digest("sub1/subsub"),
               sub2 = dir_digest("sub2");

  auto missing = FindMissingInTree(*cas_, snap.root);
  ASSERT_TRUE(missing.ok());
  EXPECT_THAT(*missing, ElementsAre(snap.root));

  ASSERT_TRUE(cas_->PutVerified(snap.root, snap.directories.at(snap.root)).ok());
  ASSERT_TRUE(cas_->PutVerified(sub1, snap.directories.at(sub1)).ok());
  ASSERT_TRUE(cas_->Put("one").ok());
  missing = FindMissingInTree(*cas_, snap.root);
  ASSERT_TRUE(missing.ok()) << missing.status();
  EXPECT_THAT(*missing, UnorderedElementsAre(sub2, subsub, DigestOf("two")));

  ASSERT_TRUE(StoreSnapshot(snap, *cas_).ok());
  missing = FindMissingInTree(*cas_, snap.root);
  ASSERT_TRUE(missing.ok());
  EXPECT_THAT(*missing, IsEmpty());

  absl::flat_hash_set<Digest> all;
  ASSERT_TRUE(CollectTreeDigests(*cas_, snap.root, &all).ok());
  std::vector<Digest> expected = {
      snap.root,       sub1, subsub, sub2, DigestOf("one"), DigestOf("two"), DigestOf("three"),
      DigestOf("four")};
  EXPECT_THAT(all, UnorderedElementsAreArray(expected));

  Directory bad = OneFile("..");
  EXPECT_EQ(FindMissingInTree(*cas_, PutDirectory(bad)).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(FindMissingInTree(*cas_, Digest{"nothex", 1}).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(SnapshotTest, LookupFileFindsFilesOnly) {
  fs::path dir = MakeTree("src", {{"a/b/c.py", "ccc", 0755}, {"top", "t"}});
  Symlink("top", dir / "a/link");
  Snapshot snap = Build(dir);
  ASSERT_TRUE(StoreSnapshot(snap, *cas_).ok());

  absl::StatusOr<amld::v1::FileNode> f = LookupFile(*cas_, snap.root, "a/b/c.py");
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_EQ(f->name(), "c.py");
  EXPECT_EQ(FromProto(f->digest()), DigestOf("ccc"));
  EXPECT_TRUE(f->is_executable());
  EXPECT_TRUE(LookupFile(*cas_, snap.root, "top").ok());

  for (const char* absent : {"a/b", "a", "a/link", "nope", "a/b/c.py/x", "top/x"}) {
    EXPECT_EQ(LookupFile(*cas_, snap.root, absent).status().code(), absl::StatusCode::kNotFound)
        << absent;
  }
  for (const char* bad : {"", "/top", "../top", "a/../top", "a//b/c.py", "a/b/", "./top"}) {
    EXPECT_EQ(LookupFile(*cas_, snap.root, bad).status().code(), absl::StatusCode::kInvalidArgument)
        << bad;
  }
}

TEST_F(SnapshotTest, StoreSnapshotRefusesAFileChangedSinceHashing) {
  fs::path dir = MakeTree("src", {{"a", "before"}});
  Snapshot snap = Build(dir);
  WriteFile(dir / "a", "after!");
  absl::Status st = StoreSnapshot(snap, *cas_);
  EXPECT_EQ(st.code(), absl::StatusCode::kAborted) << st;
  EXPECT_FALSE(cas_->Contains(snap.root));
}

// ------------------------------------------------------- walking the folder

TEST_F(SnapshotTest, IgnoreFilesAreHonouredAndSkippedPathsExplained) {
  fs::path dir = MakeTree("src", {{".amlignore", "data/\n*.log\n"},
                                  {"train.py", "x"},
                                  {"data/big.bin", "xxxx"},
                                  {"data/more/b.bin", "yy"},
                                  {"run.log", "log"},
                                  {"sub/debug.log", "log"},
                                  {".git/HEAD", "ref: main"}});
  Snapshot snap = Build(dir);
  std::vector<std::string> files;
  for (const SnapshotFile& f : snap.files) files.push_back(f.rel_path);
  EXPECT_THAT(files, ElementsAre(".amlignore", "train.py"));

  ASSERT_EQ(snap.skipped.size(), 4u);
  const SkippedPath& git = snap.skipped[0];
  EXPECT_EQ(git.rel_path, ".git");
  EXPECT_EQ(git.decision.source, "(builtin)");
  const SkippedPath& data = snap.skipped[1];
  EXPECT_EQ(data.rel_path, "data");
  EXPECT_TRUE(data.is_dir);
  EXPECT_TRUE(data.decision.ignored);
  EXPECT_EQ(data.decision.source, ".amlignore");
  EXPECT_EQ(data.decision.line, 1);
  EXPECT_EQ(data.decision.pattern, "data/");
  EXPECT_EQ(data.why, "ignored by .amlignore:1 (data/)");
  EXPECT_EQ(snap.skipped[2].rel_path, "run.log");
  EXPECT_EQ(snap.skipped[2].decision.line, 2);
  EXPECT_EQ(snap.skipped[3].rel_path, "sub/debug.log");

  Snapshot all = Build(dir, {.use_ignore_files = false});
  files.clear();
  for (const SnapshotFile& f : all.files) files.push_back(f.rel_path);
  EXPECT_THAT(files, ElementsAre(".amlignore", "data/big.bin", "data/more/b.bin", "run.log",
                                 "sub/debug.log", "train.py"));
  ASSERT_EQ(all.skipped.size(), 1u);
  EXPECT_EQ(all.skipped[0].rel_path, ".git");
}

TEST_F(SnapshotTest, FifosAreSkippedAndReported) {
  fs::path dir = MakeTree("src", {{"f", "x"}});
  ASSERT_EQ(::mkfifo((dir / "pipe").c_str(), 0644), 0);
  Snapshot snap = Build(dir);
  ASSERT_EQ(snap.skipped.size(), 1u);
  EXPECT_EQ(snap.skipped[0].rel_path, "pipe");
  EXPECT_EQ(snap.skipped[0].why, "fifo");
  EXPECT_FALSE(snap.skipped[0].decision.ignored);
  EXPECT_EQ(snap.files.size(), 1u);
}

std::string NumberedName(int i) { return absl::StrCat(i < 10 ? "file-0" : "file-", i); }

TEST_F(SnapshotTest, LimitsFailListingTheLargestFiles) {
  std::vector<Entry> tree;
  for (int i = 1; i <= 12; ++i) {
    tree.push_back({NumberedName(i), std::string(i * 1000, 'x')});
  }
  fs::path dir = MakeTree("src", tree);

  absl::StatusOr<Snapshot> snap = BuildSnapshot(dir, {.max_total_bytes = 50000});
  ASSERT_EQ(snap.status().code(), absl::StatusCode::kResourceExhausted);
  std::string msg(snap.status().message());
  EXPECT_THAT(msg, HasSubstr("78000 bytes"));
  EXPECT_THAT(msg, HasSubstr("file-12  11.7 KiB (12000 bytes)"));
  for (int i = 3; i <= 12; ++i) EXPECT_THAT(msg, HasSubstr(NumberedName(i)));
  EXPECT_THAT(msg, Not(HasSubstr("file-02")));
  EXPECT_THAT(msg, Not(HasSubstr("file-01")));
  EXPECT_LT(msg.find("file-12"), msg.find("file-11"));

  snap = BuildSnapshot(dir, {.max_files = 11});
  ASSERT_EQ(snap.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(std::string(snap.status().message()), HasSubstr("12 files"));
  EXPECT_THAT(std::string(snap.status().message()), HasSubstr("file-12"));

  EXPECT_TRUE(BuildSnapshot(dir, {.max_total_bytes = 78000, .max_files = 12}).ok());
}

// A stat-keyed cache that counts its calls.
class CountingCache : public DigestCache {
 public:
  std::optional<Digest> Lookup(const std::string& rel_path, const struct stat& st) override {
    ++lookups;
    auto it = entries.find(Key(rel_path, st));
    if (it == entries.end()) return std::nullopt;
    ++hits;
    return it->second;
  }
  void Store(const std::string& rel_path, const struct stat& st, const Digest& d) override {
    ++stores;
    entries[Key(rel_path, st)] = d;
  }
  static std::string Key(const std::string& rel_path, const struct stat& st) {
    return absl::StrCat(rel_path, "|", st.st_size, "|", st.st_ino, "|", st.st_mtim.tv_sec, ".",
                        st.st_mtim.tv_nsec, "|", st.st_ctim.tv_sec, ".", st.st_ctim.tv_nsec);
  }
  void ResetCounts() { lookups = hits = stores = 0; }

  std::map<std::string, Digest> entries;
  int lookups = 0, hits = 0, stores = 0;
};

TEST_F(SnapshotTest, DigestCacheSparesReadingUnchangedFiles) {
  fs::path dir = MakeTree("src", SampleTree());
  const int n = static_cast<int>(SampleTree().size());
  CountingCache cache;
  const Digest first = Build(dir, {.threads = 2, .cache = &cache}).root;
  EXPECT_EQ(cache.lookups, n);
  EXPECT_EQ(cache.hits, 0);
  EXPECT_EQ(cache.stores, n);

  cache.ResetCounts();
  EXPECT_EQ(Build(dir, {.threads = 2, .cache = &cache}).root, first);
  EXPECT_EQ(cache.hits, n);
  EXPECT_EQ(cache.stores, 0) << "an unchanged tree is not hashed again";

  WriteFile(dir / "src/model.py", "class Model: changed\n");
  cache.ResetCounts();
  const Digest changed = Build(dir, {.threads = 2, .cache = &cache}).root;
  EXPECT_NE(changed, first);
  EXPECT_EQ(cache.hits, n - 1);
  EXPECT_EQ(cache.stores, 1);
  EXPECT_EQ(changed, Build(dir).root);
}

TEST_F(SnapshotTest, CachedDigestIsUsedWithoutReadingTheFile) {
  fs::path dir = MakeTree("src", {{"a", "real"}});
  // A cache that claims another content of the same size: the snapshot takes
  // its word, which shows the file was not read.
  class LyingCache : public DigestCache {
   public:
    std::optional<Digest> Lookup(const std::string&, const struct stat&) override {
      return DigestOf("fake");
    }
    void Store(const std::string&, const struct stat&, const Digest&) override {
      ADD_FAILURE() << "nothing should be hashed";
    }
  } cache;
  Snapshot snap = Build(dir, {.cache = &cache});
  ASSERT_EQ(snap.files.size(), 1u);
  EXPECT_EQ(snap.files[0].digest, DigestOf("fake"));
}

TEST_F(SnapshotTest, UnreadableFileIsNamedInTheError) {
  fs::path dir = MakeTree("src", {{"ok", "x"}, {"secret.bin", "s", 0600}});
  ASSERT_EQ(::chmod(tmp_.c_str(), 0755), 0);
  ASSERT_EQ(::chmod(dir.c_str(), 0755), 0);
  auto build_and_exit = [&] {
    // Root reads anything; drop to nobody so that 0600 keeps us out.
    if (::geteuid() == 0 && (::setgid(65534) != 0 || ::setuid(65534) != 0)) std::_Exit(90);
    absl::StatusOr<Snapshot> snap = BuildSnapshot(dir);
    std::fprintf(stderr, "%s\n", snap.status().ToString().c_str());
    std::_Exit(static_cast<int>(snap.status().code()));
  };
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(build_and_exit(),
              ::testing::ExitedWithCode(static_cast<int>(absl::StatusCode::kPermissionDenied)),
              "cannot read \"secret.bin\"");
}

TEST_F(SnapshotTest, NonUtf8NamesAreRefusedWithTheirName) {
  fs::path dir = MakeTree("src", {{"ok", "x"}, {"bad\xff.txt", "y"}});
  absl::StatusOr<Snapshot> snap = BuildSnapshot(dir);
  EXPECT_EQ(snap.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(snap.status().message()), HasSubstr("bad\\xff.txt"));
}

TEST_F(SnapshotTest, BadSourceFolderIsAClearError) {
  EXPECT_EQ(BuildSnapshot(tmp_ / "missing").status().code(), absl::StatusCode::kNotFound);
  WriteFile(tmp_ / "plain", "x");
  EXPECT_FALSE(BuildSnapshot(tmp_ / "plain").ok());
}

// ------------------------------------------------ subfolders, cookies, threads

TEST_F(SnapshotTest, SubdirWalkIsTheSubtreeOfAFullWalk) {
  fs::path src = MakeTree("src", {{".gitignore", "*.log\n"},
                                  {"top.py", "t"},
                                  {"sub/y.py", "y"},
                                  {"sub/x.log", "ignored by the parent's rule"},
                                  {"sub/deeper/z.py", "z"}});
  Symlink("../y.py", src / "sub/deeper/up");  // climbs to sub/: fine at depth 2
  Snapshot full = Build(src);
  BuildOptions o;
  o.subdir = "sub";
  Snapshot part = Build(src, o);
  Directory root;
  ASSERT_TRUE(root.ParseFromString(full.directories.at(full.root)));
  ASSERT_EQ(root.directories_size(), 1);
  EXPECT_EQ(part.root, FromProto(root.directories(0).digest()));
  std::vector<std::string> paths;
  for (const SnapshotFile& f : part.files) paths.push_back(f.rel_path);
  EXPECT_THAT(paths, ElementsAre("sub/deeper/z.py", "sub/y.py"));
  ASSERT_EQ(part.skipped.size(), 1u);
  EXPECT_EQ(part.skipped[0].rel_path, "sub/x.log");
  EXPECT_EQ(part.skipped[0].decision.source, ".gitignore");
}

TEST_F(SnapshotTest, SubdirIsNeverReachedThroughALinkOrDots) {
  fs::path src = MakeTree("src", {{"real/a", "a"}});
  Symlink("real", src / "link");
  BuildOptions o;
  o.subdir = "link";
  EXPECT_EQ(BuildSnapshot(src, o).status().code(), absl::StatusCode::kNotFound);
  o.subdir = "../src/real";
  EXPECT_EQ(BuildSnapshot(src, o).status().code(), absl::StatusCode::kInvalidArgument);
  o.subdir = "real/a";
  EXPECT_EQ(BuildSnapshot(src, o).status().code(), absl::StatusCode::kNotFound);
}

TEST_F(SnapshotTest, SyncCookiesAreAlwaysLeftOut) {
  fs::path src = MakeTree("src", {{"a.py", "a"}, {".amld-cookie-12-3", ""}});
  Snapshot snap = Build(src);
  ASSERT_EQ(snap.files.size(), 1u);
  ASSERT_EQ(snap.skipped.size(), 1u);
  EXPECT_EQ(snap.skipped[0].decision.source, "(builtin)");
  BuildOptions o;
  o.use_ignore_files = false;
  EXPECT_EQ(Build(src, o).files.size(), 1u);
}

TEST_F(SnapshotTest, ALocalTrysOutputsAndLogsAreLeftOutUnlessAnIgnoreRuleKeepsThem) {
  fs::path src = MakeTree("src", {{"train.py", "x"},
                                  {"outputs/model.json", "stale"},
                                  {"logs/old.txt", "stale"},
                                  {"sub/outputs/kept.txt", "only the root's are the run's"}});
  Snapshot snap = Build(src);
  std::vector<std::string> paths;
  for (const SnapshotFile& f : snap.files) paths.push_back(f.rel_path);
  EXPECT_THAT(paths, ElementsAre("sub/outputs/kept.txt", "train.py"));
  ASSERT_EQ(snap.skipped.size(), 2u);
  EXPECT_EQ(snap.skipped[0].rel_path, "logs");
  EXPECT_EQ(snap.skipped[1].rel_path, "outputs");
  EXPECT_EQ(snap.skipped[1].decision.source, kDefaultRuleSource);
  EXPECT_EQ(snap.skipped[1].decision.pattern, "/outputs/");
  EXPECT_THAT(snap.skipped[1].why, HasSubstr("!/outputs/"));
  // Without ignore files too: nothing could bring them back, but a run must
  // still never show files it did not write.
  EXPECT_EQ(Build(src, {.use_ignore_files = false}).files.size(), 2u);
  // A `!` rule keeps one; a rule that ignores the other names itself.
  WriteFile(src / ".amlignore", "!/outputs/\nlogs/\n");
  snap = Build(src);
  paths.clear();
  for (const SnapshotFile& f : snap.files) paths.push_back(f.rel_path);
  EXPECT_THAT(paths, ElementsAre(".amlignore", "outputs/model.json", "sub/outputs/kept.txt",
                                 "train.py"));
  ASSERT_EQ(snap.skipped.size(), 1u);
  EXPECT_EQ(snap.skipped[0].decision.source, ".amlignore");
}

TEST_F(SnapshotTest, MaterializeGivesTheSameTreeOnAnyNumberOfThreads) {
  // More folders than the materializer holds open at once, so it flushes.
  // Few distinct files and folders: storing each blob costs an fsync.
  std::vector<Entry> tree;
  for (int d = 0; d < 70; ++d) {
    tree.push_back({absl::StrCat("d", d, "/e0/f.py"), "x = 0\n", 0755});
    tree.push_back({absl::StrCat("d", d, "/e1/g.py"), "x = 1\n", 0644});
  }
  fs::path src = MakeTree("src", tree);
  Snapshot snap = Build(src);
  ASSERT_TRUE(StoreSnapshot(snap, *cas_).ok());
  std::map<std::string, std::string> first;
  for (int threads : {1, 2, 8}) {
    fs::path dest = tmp_ / absl::StrCat("dest", threads);
    MaterializeOptions mo;
    mo.threads = threads;
    absl::Status st = Materialize(*cas_, snap.root, dest, mo);
    ASSERT_TRUE(st.ok()) << st;
    EXPECT_EQ(Build(dest).root, snap.root) << threads << " threads";
    if (first.empty()) {
      first = Describe(dest);
    } else {
      EXPECT_EQ(Describe(dest), first) << threads << " threads";
    }
  }
}

TEST_F(SnapshotTest, FindMissingInTreeRemembersCompleteFolders) {
  fs::path src = MakeTree("src", {{"a/x.py", "x"}, {"a/b/y.py", "y"}, {"c/z.py", "z"}});
  Snapshot snap = Build(src);
  ASSERT_TRUE(StoreSnapshot(snap, *cas_).ok());
  CompleteDirs known;
  auto missing = FindMissingInTree(*cas_, snap.root, &known);
  ASSERT_TRUE(missing.ok()) << missing.status();
  EXPECT_THAT(*missing, IsEmpty());
  EXPECT_EQ(known.size(), 4u);  // root, a, a/b, c
  EXPECT_EQ(known.at(snap.root), 0);

  // An edit below c/ makes a new root and a new c/; a/ is the same folder.
  WriteFile(src / "c/z.py", "z2");
  Snapshot edited = Build(src);
  ASSERT_TRUE(StoreSnapshot(edited, *cas_).ok());
  // Remove a/ from the store behind the cache's back (only GC removes
  // blobs, and it clears what is known): the remembered a/ is not read
  // again, which shows it is skipped.
  Directory root;
  ASSERT_TRUE(root.ParseFromString(snap.directories.at(snap.root)));
  ASSERT_EQ(root.directories(0).name(), "a");
  const Digest a = FromProto(root.directories(0).digest());
  ASSERT_TRUE(fs::remove(cas_->ObjectPath(a)));
  missing = FindMissingInTree(*cas_, edited.root, &known);
  ASSERT_TRUE(missing.ok());
  EXPECT_THAT(*missing, IsEmpty());
  EXPECT_TRUE(known.contains(edited.root));
  CompleteDirs fresh;
  auto all = FindMissingInTree(*cas_, edited.root, &fresh);
  ASSERT_TRUE(all.ok());
  EXPECT_THAT(*all, ElementsAre(a));
  EXPECT_THAT(*FindMissingInTree(*cas_, edited.root), ElementsAre(a));
  EXPECT_FALSE(fresh.contains(edited.root)) << "a tree with a folder missing is not complete";
}

TEST_F(SnapshotTest, FolderKnownCompleteDeeperIsCheckedAgainShallower) {
  // "../t" is fine one level down and climbs out of the root at the top.
  Directory climbing;
  auto* link = climbing.add_symlinks();
  link->set_name("up");
  link->set_target("../t");
  const Digest d = PutDirectory(climbing);
  CompleteDirs known{{d, 1}};
  auto got = FindMissingInTree(*cas_, d, &known);
  EXPECT_EQ(got.status().code(), absl::StatusCode::kInvalidArgument) << got.status();
}

TEST_F(SnapshotTest, MaterializedModesDoNotDependOnTheUmask) {
  fs::path src = MakeTree("src", {{"run.sh", "#!/bin/sh\n", 0755}, {"sub/a.py", "a"}});
  Snapshot snap = Build(src);
  ASSERT_TRUE(StoreSnapshot(snap, *cas_).ok());
  for (mode_t mask : {mode_t{022}, mode_t{077}, mode_t{0}}) {
    const mode_t old = ::umask(mask);
    fs::path dest = tmp_ / absl::StrCat("dest", mask);
    absl::Status st = Materialize(*cas_, snap.root, dest);
    ::umask(old);
    ASSERT_TRUE(st.ok()) << st;
    auto got = Describe(dest);
    EXPECT_EQ(got.at("run.sh"), "file 755 #!/bin/sh\n") << "umask " << mask;
    EXPECT_EQ(got.at("sub/a.py"), "file 644 a") << "umask " << mask;
    EXPECT_EQ(got.at("sub"), "dir 755") << "umask " << mask;
  }
}

}  // namespace
}  // namespace amld::storage
