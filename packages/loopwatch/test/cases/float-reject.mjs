// A server that logs unhandled rejections and goes on (as most do, and as test runners do), with one
// floating call that fails: one bug, so one report.
process.on('unhandledRejection', (e) => console.log(`logged: ${e.message}`));
async function save(id) { await new Promise((r) => setTimeout(r, 5)); throw new Error(`cannot save ${id}`); }
function handle() { save(1); }   // [FLOAT-REJECTS]
handle();
await new Promise((r) => setTimeout(r, 100));
globalThis.gc(); await new Promise((r) => setTimeout(r, 50)); globalThis.gc(); await new Promise((r) => setTimeout(r, 50));
console.log('done');
