-- A state database as amld wrote it at schema version 1 (migration 1 only),
-- with a few experiments, runs, transitions, artifacts and metrics.
-- state_store_test opens a copy of state-v1.sqlite, made from this script
-- with:   sqlite3 tests/data/state-v1.sqlite < tests/data/state-v1.sql
-- and checks that it migrates to the latest version with its data intact.
-- The CREATE statements are migration 1's SQL, verbatim (the test compares
-- them). Config blobs are serialized amld.v1.RunConfig messages, made with
--   protoc --encode=amld.v1.RunConfig -I proto amld/v1/runs.proto | xxd -p
-- from the text format given above each run. Never regenerate with newer
-- code: this file stands for databases already on users' disks.
BEGIN;
CREATE TABLE experiments (
  name TEXT PRIMARY KEY,
  created_ns INTEGER NOT NULL
) STRICT;

CREATE TABLE runs (
  id TEXT PRIMARY KEY,
  experiment TEXT NOT NULL REFERENCES experiments(name),
  config BLOB NOT NULL,
  snapshot_hash TEXT,
  snapshot_size INTEGER,
  status INTEGER NOT NULL,
  created_ns INTEGER NOT NULL,
  exit_code INTEGER NOT NULL DEFAULT 0,
  exit_signal INTEGER NOT NULL DEFAULT 0,
  error TEXT NOT NULL DEFAULT '',
  placement TEXT NOT NULL DEFAULT '',
  submitter_uid INTEGER NOT NULL,
  parent_run_id TEXT REFERENCES runs(id),
  git_repository TEXT NOT NULL DEFAULT '',
  git_commit TEXT NOT NULL DEFAULT ''
) STRICT;
CREATE INDEX runs_by_created ON runs(created_ns, id);
CREATE INDEX runs_by_experiment ON runs(experiment, created_ns, id);
CREATE INDEX runs_by_status ON runs(status, created_ns, id);

CREATE TABLE run_transitions (
  run_id TEXT NOT NULL REFERENCES runs(id),
  seq INTEGER NOT NULL,
  status INTEGER NOT NULL,
  time_ns INTEGER NOT NULL,
  reason TEXT NOT NULL DEFAULT '',
  PRIMARY KEY (run_id, seq)
) WITHOUT ROWID, STRICT;

CREATE TABLE artifacts (
  run_id TEXT NOT NULL REFERENCES runs(id),
  path TEXT NOT NULL,
  hash TEXT NOT NULL,
  size INTEGER NOT NULL,
  PRIMARY KEY (run_id, path)
) WITHOUT ROWID, STRICT;

CREATE TABLE metrics (
  run_id TEXT NOT NULL REFERENCES runs(id),
  name TEXT NOT NULL,
  step INTEGER NOT NULL,
  time_ns INTEGER NOT NULL,
  number REAL,
  text TEXT,
  CHECK (number IS NULL OR text IS NULL)
) STRICT;

INSERT INTO experiments(name, created_ns) VALUES
  ('mnist', 1700000000000000000),
  ('cifar', 1700000200000000000);

-- experiment_name: "mnist" snapshot_root { hash: "316924528e7979a879fe9c791b231fc528049c7e45c6197d8e739e71649dc84f" size_bytes: 412 } script: "train.py" arguments: "--epochs" arguments: "3" compute_target: "local" tags { key: "team" value: "vision" } git { repository_uri: "https://example.com/ml/mnist.git" branch: "main" commit: "4f2a9c0d1e8b7a6f5e4d3c2b1a0f9e8d7c6b5a49" }
INSERT INTO runs VALUES ('mnist_1700000000_0a1b2c3d', 'mnist', X'0a056d6e69737412450a4033313639323435323865373937396138373966653963373931623233316663353238303439633765343563363139376438653733396537313634396463383466109c031a08747261696e2e707922082d2d65706f6368732201333a056c6f63616c520e0a047465616d1206766973696f6e5a520a2068747470733a2f2f6578616d706c652e636f6d2f6d6c2f6d6e6973742e67697412046d61696e1a2834663261396330643165386237613666356534643363326231613066396538643763366235613439',
  '316924528e7979a879fe9c791b231fc528049c7e45c6197d8e739e71649dc84f', 412, 6, 1700000000000000000, 0, 0, '', 'local', 1000, NULL,
  'https://example.com/ml/mnist.git', '4f2a9c0d1e8b7a6f5e4d3c2b1a0f9e8d7c6b5a49');
-- experiment_name: "mnist" snapshot_root { hash: "316924528e7979a879fe9c791b231fc528049c7e45c6197d8e739e71649dc84f" size_bytes: 412 } script: "train.py" arguments: "--lr" arguments: "10" git { repository_uri: "https://example.com/ml/mnist.git" branch: "main" commit: "4f2a9c0d1e8b7a6f5e4d3c2b1a0f9e8d7c6b5a49" }
INSERT INTO runs VALUES ('mnist_1700000100_deadbeef', 'mnist', X'0a056d6e69737412450a4033313639323435323865373937396138373966653963373931623233316663353238303439633765343563363139376438653733396537313634396463383466109c031a08747261696e2e707922042d2d6c72220231305a520a2068747470733a2f2f6578616d706c652e636f6d2f6d6c2f6d6e6973742e67697412046d61696e1a2834663261396330643165386237613666356534643363326231613066396538643763366235613439',
  '316924528e7979a879fe9c791b231fc528049c7e45c6197d8e739e71649dc84f', 412, 7, 1700000100000000000, 3, 0, 'exit code 3', 'local', 1001, NULL,
  'https://example.com/ml/mnist.git', '4f2a9c0d1e8b7a6f5e4d3c2b1a0f9e8d7c6b5a49');
-- experiment_name: "cifar" snapshot_root { hash: "caf1bfe70062666510c164aed1bd0ea46d6460ffe3b4c6b2fb24168c5f0233bf" size_bytes: 977 } command: "python sweep.py" display_name: "lr sweep"
INSERT INTO runs VALUES ('cifar_1700000200_00000001', 'cifar', X'0a05636966617212450a406361663162666537303036323636363531306331363461656431626430656134366436343630666665336234633662326662323431363863356630323333626610d1072a0f707974686f6e2073776565702e707962086c72207377656570',
  'caf1bfe70062666510c164aed1bd0ea46d6460ffe3b4c6b2fb24168c5f0233bf', 977, 4, 1700000200000000000, 0, 0, '', 'local', 1000, NULL, '', '');
-- experiment_name: "cifar" snapshot_root { hash: "caf1bfe70062666510c164aed1bd0ea46d6460ffe3b4c6b2fb24168c5f0233bf" size_bytes: 977 } script: "train.py" arguments: "--lr" arguments: "0.01" max_run_duration_seconds: 600
INSERT INTO runs VALUES ('cifar_1700000201_00000002', 'cifar', X'0a05636966617212450a406361663162666537303036323636363531306331363461656431626430656134366436343630666665336234633662326662323431363863356630323333626610d1071a08747261696e2e707922042d2d6c722204302e303148d804',
  'caf1bfe70062666510c164aed1bd0ea46d6460ffe3b4c6b2fb24168c5f0233bf', 977, 1, 1700000201000000000, 0, 0, '', '', 1000, 'cifar_1700000200_00000001', '', '');

INSERT INTO run_transitions(run_id, seq, status, time_ns, reason) VALUES
  ('mnist_1700000000_0a1b2c3d', 1, 1, 1700000000000000000, ''),
  ('mnist_1700000000_0a1b2c3d', 2, 2, 1700000000500000000, ''),
  ('mnist_1700000000_0a1b2c3d', 3, 3, 1700000001000000000, ''),
  ('mnist_1700000000_0a1b2c3d', 4, 4, 1700000001250000000, ''),
  ('mnist_1700000000_0a1b2c3d', 5, 5, 1700000061000000000, ''),
  ('mnist_1700000000_0a1b2c3d', 6, 6, 1700000062000000000, ''),
  ('mnist_1700000100_deadbeef', 1, 1, 1700000100000000000, ''),
  ('mnist_1700000100_deadbeef', 2, 2, 1700000100200000000, ''),
  ('mnist_1700000100_deadbeef', 3, 3, 1700000100400000000, ''),
  ('mnist_1700000100_deadbeef', 4, 4, 1700000100600000000, ''),
  ('mnist_1700000100_deadbeef', 5, 5, 1700000110000000000, 'process exited'),
  ('mnist_1700000100_deadbeef', 6, 7, 1700000110500000000, 'exit code 3'),
  ('cifar_1700000200_00000001', 1, 1, 1700000200000000000, ''),
  ('cifar_1700000200_00000001', 2, 2, 1700000200100000000, ''),
  ('cifar_1700000200_00000001', 3, 3, 1700000200200000000, ''),
  ('cifar_1700000200_00000001', 4, 4, 1700000200300000000, ''),
  ('cifar_1700000201_00000002', 1, 1, 1700000201000000000, 'sweep child 1');

INSERT INTO artifacts(run_id, path, hash, size) VALUES
  ('mnist_1700000000_0a1b2c3d', 'outputs/model.json', '9372c470eeadd5ecd9c3c74c2b3cb633f8e2f2fad799250a0f70d652b6b825e4', 5),
  ('mnist_1700000000_0a1b2c3d', 'logs/train.log', '6bc92e1a3f720307f43e0f23954ec05bf1ccab9d981ae66168ab9b49e3e4bb5f', 9),
  ('mnist_1700000000_0a1b2c3d', 'user_logs/std_log.txt', '72a2d9f33e08bba306df82b9052b108c50bbcab794af3eeadebcd4235bc5a073', 9),
  ('mnist_1700000100_deadbeef', 'user_logs/std_log.txt', '40d989e26d68ae614c8e0f9d82c7703162c4d3f2224d9215e2f6c6c31d675c2f', 9);

INSERT INTO metrics(run_id, name, step, time_ns, number, text) VALUES
  ('mnist_1700000000_0a1b2c3d', 'loss', 0, 1700000010000000000, 0.9, NULL),
  ('mnist_1700000000_0a1b2c3d', 'loss', 1, 1700000020000000000, 0.5, NULL),
  ('mnist_1700000000_0a1b2c3d', 'loss', 2, 1700000030000000000, 0.25, NULL),
  ('mnist_1700000000_0a1b2c3d', 'accuracy', 2, 1700000030000000000, 0.875, NULL),
  ('mnist_1700000000_0a1b2c3d', 'phase', 0, 1700000031000000000, NULL, 'done'),
  ('mnist_1700000100_deadbeef', 'loss', 0, 1700000105000000000, 1.5, NULL);

PRAGMA application_id = 1634561124;
PRAGMA user_version = 1;
COMMIT;
