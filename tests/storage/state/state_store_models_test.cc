// What changes about a run after submit (run_labels) and registered models
// (models), both of schema version 5: tags over the submitted ones,
// add-only properties, a requested failure; model versions from a run's
// artifacts or given files, registered once per origin, kept by GC.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "storage/state/state_store.h"
#include "tests/testing/test_util.h"

namespace amld::storage {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Pair;
using ::testing::UnorderedElementsAre;

class LabelsAndModelsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto opened = StateStore::Open(dir_ / "state.db");
    ASSERT_TRUE(opened.ok()) << opened.status();
    store_ = std::move(*opened);
    NewRun run;
    run.id = "exp_1_00000001";
    run.config.set_experiment_name("exp");
    run.config.set_script("train.py");
    run.config.set_display_name("submitted");
    (*run.config.mutable_tags())["team"] = "vision";
    (*run.config.mutable_tags())["old"] = "x";
    run.now = absl::FromUnixSeconds(100);
    ASSERT_TRUE(store_->InsertRun(run).ok());
  }

  testing::TempDir dir_;
  std::unique_ptr<StateStore> store_;
  const std::string id_ = "exp_1_00000001";
};

TEST_F(LabelsAndModelsTest, TagsPropertiesAndDisplayNameChangeOverTheSubmittedOnes) {
  RunLabelChanges changes;
  changes.set_tags = {{"stage", "train"}, {"team", "nlp"}};
  changes.remove_tags = {"old"};
  changes.add_properties = {{"author", "me"}};
  changes.display_name = "renamed";
  auto run = store_->UpdateRunLabels(id_, changes);
  ASSERT_TRUE(run.ok()) << run.status();
  EXPECT_THAT(run->tags(), UnorderedElementsAre(Pair("team", "nlp"), Pair("stage", "train")));
  EXPECT_THAT(run->config().tags(), UnorderedElementsAre(Pair("team", "vision"), Pair("old", "x")));
  EXPECT_THAT(run->properties(), UnorderedElementsAre(Pair("author", "me")));
  EXPECT_EQ(run->display_name(), "renamed");
  // Properties are add-only: the same value again is fine, another is refused whole.
  RunLabelChanges again;
  again.add_properties = {{"author", "me"}};
  EXPECT_TRUE(store_->UpdateRunLabels(id_, again).ok());
  RunLabelChanges conflict;
  conflict.set_tags = {{"never", "stored"}};
  conflict.add_properties = {{"author", "you"}};
  auto refused = store_->UpdateRunLabels(id_, conflict);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(refused.status().message(), HasSubstr("properties cannot change"));
  EXPECT_FALSE(store_->GetRun(id_)->tags().contains("never"));
  RunLabelChanges empty_key;
  empty_key.set_tags = {{"", "v"}};
  EXPECT_EQ(store_->UpdateRunLabels(id_, empty_key).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(store_->UpdateRunLabels("nope", changes).status().code(), absl::StatusCode::kNotFound);
  // A requested failure is kept for the run's end.
  EXPECT_FALSE(store_->RequestedFailure(id_)->has_value());
  RunLabelChanges fail;
  fail.failure = "bad data";
  ASSERT_TRUE(store_->UpdateRunLabels(id_, fail).ok());
  EXPECT_EQ(store_->RequestedFailure(id_)->value_or(""), "bad data");
}

TEST_F(LabelsAndModelsTest, ModelsFromARunsArtifactsAreVersionedOncePerOrigin) {
  ASSERT_TRUE(store_
                  ->PutArtifacts(id_, {{"outputs/model.pkl", DigestOf("weights")},
                                       {"outputs/model.pkl.bak", DigestOf("old")},
                                       {"outputs/dir/a.txt", DigestOf("a")},
                                       {"outputs/dir/sub/b.txt", DigestOf("b")}})
                  .ok());
  amld::v1::Model m;
  m.set_name("clf");
  (*m.mutable_tags())["area"] = "demo";
  auto v1 = store_->RegisterModelFromRun(m, id_, "./outputs/model.pkl", id_ + ":7",
                                         absl::FromUnixSeconds(200));
  ASSERT_TRUE(v1.ok()) << v1.status();
  EXPECT_EQ(v1->version(), 1);
  EXPECT_TRUE(v1->single_file());
  ASSERT_EQ(v1->files_size(), 1);
  EXPECT_EQ(v1->files(0).path(), "model.pkl");
  EXPECT_EQ(v1->run_id(), id_);
  // The same origin (a restarted daemon reading the line again): the same version.
  auto same = store_->RegisterModelFromRun(m, id_, "outputs/model.pkl", id_ + ":7",
                                           absl::FromUnixSeconds(300));
  ASSERT_TRUE(same.ok());
  EXPECT_EQ(same->version(), 1);
  auto folder = store_->RegisterModelFromRun(m, id_, "outputs/dir/", "", absl::FromUnixSeconds(400));
  ASSERT_TRUE(folder.ok()) << folder.status();
  EXPECT_EQ(folder->version(), 2);
  EXPECT_FALSE(folder->single_file());
  std::vector<std::string> paths;
  for (const auto& f : folder->files()) paths.push_back(f.path());
  EXPECT_THAT(paths, ElementsAre("a.txt", "sub/b.txt"));
  auto missing = store_->RegisterModelFromRun(m, id_, "outputs/nothing", "", absl::Now());
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(missing.status().message(), HasSubstr("outputs/model.pkl"));
  EXPECT_EQ(store_->GetModel("clf", 0)->version(), 2);
  EXPECT_EQ(store_->GetModel("clf", 1)->files(0).path(), "model.pkl");
  EXPECT_EQ(store_->GetModel("clf", 3).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(store_->GetModel("none", 0).status().code(), absl::StatusCode::kNotFound);
  auto all = store_->ListModels("", false, "");
  ASSERT_TRUE(all.ok());
  ASSERT_EQ(all->size(), 2u);
  EXPECT_EQ((*all)[0].version(), 2);
  EXPECT_EQ(store_->ListModels("", true, "")->size(), 1u);
  amld::v1::Model bad;
  bad.set_name("-bad name");
  EXPECT_EQ(store_->RegisterModel(bad, "", absl::Now()).status().code(),
            absl::StatusCode::kInvalidArgument);
  // A model keeps its files from garbage collection whatever becomes of the run.
  ASSERT_TRUE(store_->RemoveArtifacts(id_, {"outputs/model.pkl"}).ok());
  auto refs = store_->ReferencedDigests();
  ASSERT_TRUE(refs.ok());
  EXPECT_THAT(refs->artifacts, ::testing::Contains(DigestOf("weights")));
}

}  // namespace
}  // namespace amld::storage
