/**
 * The layers of the code, checked (`npm run lint:layers`, part of `npm run lint`): a file may
 * import from its own layer and the layers below it, never above. From the bottom:
 *
 *   0  rules/                      the rule language: parse, validate, compile, decide
 *   1  server/{errors,log,project,scopes}.ts, server/types/, server/measure/   leaves every layer
 *      may use (measure/: the statistics of campaign measurement, pure arithmetic)
 *   2  server/store/, server/demo/  profile stores (embedded, Redis), stored formats, bus
 *   3  server/decision/, server/contracts/, server/profiles/, server/config.ts
 *   4  server/ruleset-file.ts, server/ruleset-sync.ts, server/openrtb/ (the bidder: OpenRTB
 *      requests, bids and notices over the decision service; the data plane serves its routes)
 *   5  server/http/, server/control/, server/metrics.ts   (the listeners and what they report;
 *      http/ and control/ do not import each other)
 *   6  server/app.ts, server/cli/
 *   7  server/worker.ts
 *   8  server/main.ts
 *
 * Tests, benchmarks and load tests sit outside the layers and may import anything; the server
 * never imports them. docs/architecture.md explains the layers.
 */
const LAYERS = [
  ['rules', '^rules/'],
  ['leaves', '^server/(errors|log|project|scopes)\\.ts$|^server/(types|measure)/'],
  ['store', '^server/(store|demo)/'],
  ['decision', '^server/(decision|contracts|profiles)/|^server/config\\.ts$'],
  ['rule-set loading and the bidder', '^server/ruleset-(file|sync)\\.ts$|^server/openrtb/'],
  ['listeners', '^server/(http|control)/|^server/metrics\\.ts$'],
  ['app', '^server/app\\.ts$|^server/cli/'],
  ['worker', '^server/worker\\.ts$'],
  ['main', '^server/main\\.ts$'],
];
const TESTS = '\\.test\\.ts$|/test-kit\\.ts$';

const upward = LAYERS.slice(0, -1).map(([name, path], i) => ({
  name: `layer-${name.replace(/ /g, '-')}`,
  comment: `${name} (layer ${i}) may import only its own layer and those below it (see .dependency-cruiser.cjs)`,
  severity: 'error',
  from: { path, pathNot: TESTS },
  to: {
    path: LAYERS.slice(i + 1)
      .map(([, p]) => `(${p})`)
      .join('|'),
  },
}));

const LISTENERS = ['http', 'control'];
const sideways = LISTENERS.map((own) => ({
  name: `listener-${own}`,
  comment: `server/${own}/ is one of the listeners: it may not import another listener's folder (shared contracts belong in a lower layer)`,
  severity: 'error',
  from: { path: `^server/${own}/`, pathNot: TESTS },
  to: { path: `^server/(${LISTENERS.filter((l) => l !== own).join('|')})/` },
}));

module.exports = {
  forbidden: [
    ...upward,
    ...sideways,
    {
      name: 'no-tests-in-server',
      comment: 'the server and the rules never import tests, benchmarks or load tests',
      severity: 'error',
      from: { path: '^(server|rules)/', pathNot: TESTS },
      to: { path: '^(test|bench|load-tests)/' },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    exclude: { path: '^(dist|node_modules)/' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
  },
};
