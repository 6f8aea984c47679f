// An IDE plugin's first minutes with amld, written only against what the
// daemon itself says: server reflection (no .proto files from this repo),
// the standard health service, then a run submitted and followed over the
// Unix socket. Uses grpc-js, the client most editor plugins (VS Code) embed.
//
//   node ide_client.js SOCKET        exits 0 when every check holds
'use strict';

const assert = require('assert');
const grpc = require('@grpc/grpc-js');
const { GrpcReflection } = require('grpc-js-reflection-client');

const socket = process.argv[2];
assert(socket, 'usage: node ide_client.js SOCKET');
const target = 'unix:' + socket;
const insecure = grpc.credentials.createInsecure();
// The empty tree's digest: SHA-256 of zero bytes (an empty Directory encodes
// to nothing), which the daemon's CAS always holds.
const EMPTY = { hash: 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855', size_bytes: 0 };

function call(client, method, request) {
  return new Promise((resolve, reject) =>
    client[method](request, (err, response) => (err ? reject(err) : resolve(response))));
}

function collect(stream) {
  return new Promise((resolve, reject) => {
    const messages = [];
    stream.on('data', (m) => messages.push(m));
    stream.on('error', reject);
    stream.on('end', () => resolve(messages));
  });
}

async function serviceClient(reflection, name) {
  const descriptor = await reflection.getDescriptorBySymbol(name);
  const pkg = descriptor.getPackageObject({ keepCase: true, longs: String, enums: String,
                                            defaults: true });
  const Service = name.split('.').reduce((o, part) => o[part], pkg);
  assert(typeof Service === 'function', `reflection gave no client for ${name}`);
  return new Service(target, insecure);
}

async function main() {
  const reflection = new GrpcReflection(target, insecure);
  const services = await reflection.listServices();
  console.log('services:', services.join(' '));
  for (const s of ['amld.v1.Runs', 'amld.v1.Cas', 'amld.v1.Daemon', 'amld.v1.Experiments',
                   'amld.v1.ComputeTargets', 'amld.v1.Snapshots', 'grpc.health.v1.Health']) {
    assert(services.includes(s), `reflection does not list ${s}`);
  }
  const methods = (await reflection.listMethods('amld.v1.Runs')).map((m) => m.name);
  for (const m of ['SubmitRun', 'WaitRun', 'StreamLogs', 'CancelRun']) {
    assert(methods.includes(m), `amld.v1.Runs has no ${m}: ${methods}`);
  }

  // The health service is the standard one, described by reflection too.
  const health = await serviceClient(reflection, 'grpc.health.v1.Health');
  // The daemon as a whole (""): it serves every service or none.
  const status = (await call(health, 'Check', { service: '' })).status;
  assert.strictEqual(status, 'SERVING', `health is ${status}`);

  const daemon = await serviceClient(reflection, 'amld.v1.Daemon');
  const info = await call(daemon, 'GetInfo', {});
  console.log('daemon', info.version, 'pid', info.pid);

  const runs = await serviceClient(reflection, 'amld.v1.Runs');
  const submitted = await call(runs, 'SubmitRun', { config: {
    experiment_name: 'ide-plugin', snapshot_root: EMPTY,
    command: 'echo hello from an editor; echo "line two"' } });
  const runId = submitted.run.id;
  assert(runId, 'SubmitRun returned no run id');
  console.log('submitted', runId, submitted.run.status);

  // Follow the log to its end as `aml run logs -f` does, and the status.
  const chunks = await collect(runs.StreamLogs({ run_id: runId, follow: true }));
  const log = Buffer.concat(chunks.map((c) => c.data)).toString();
  assert.strictEqual(log, 'hello from an editor\nline two\n', `log was ${JSON.stringify(log)}`);
  const updates = await collect(runs.WaitRun({ run_id: runId }));
  const last = updates[updates.length - 1].run;
  assert.strictEqual(last.status, 'COMPLETED', `run ended ${last.status}`);
  console.log('followed', chunks.length, 'log chunk(s) and', updates.length, 'status update(s):',
              last.status);

  // Errors arrive as gRPC codes with the daemon's message.
  await assert.rejects(call(runs, 'GetRun', { run_id: 'no_such_run' }),
                       (err) => err.code === grpc.status.NOT_FOUND && /no_such_run/.test(err.details));
  console.log('ok');
}

main().then(() => process.exit(0), (err) => {
  console.error('FAILED:', err && err.stack ? err.stack : err);
  process.exit(1);
});
