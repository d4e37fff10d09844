// Validate the Prometheus Operator resources (ServiceMonitor, PrometheusRule) of rendered
// manifests against the operator's CRD schemas, which kubernetes-validate does not have.
//
//   node deploy/scripts/validate_crds.mjs TOOLS/node MANIFESTS.yaml
//
// The schemas come with the npm package @kubernetes-models/prometheus-operator (generated
// from the operator's CRDs), installed into TOOLS/node by install-tools.sh; js-yaml reads the
// file. Exits 1 naming each resource that fails and why, 2 on bad usage.
import fs from "node:fs";
import path from "node:path";
import { pathToFileURL } from "node:url";

const [toolsNode, manifests] = process.argv.slice(2);
if (!toolsNode || !manifests) {
  console.error("usage: node validate_crds.mjs TOOLS/node MANIFESTS.yaml");
  process.exit(2);
}
const load = (rel) => import(pathToFileURL(path.resolve(toolsNode, "node_modules", rel)).href);
const yaml = (await load("js-yaml/dist/js-yaml.mjs")).default;
const models = await load("@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/index.js");
const kinds = { ServiceMonitor: models.ServiceMonitor, PrometheusRule: models.PrometheusRule };

let checked = 0;
let failed = 0;
for (const doc of yaml.loadAll(fs.readFileSync(manifests, "utf8"))) {
  if (!doc || doc.apiVersion !== "monitoring.coreos.com/v1") continue;
  const name = `${doc.kind}/${doc.metadata?.name}`;
  const Model = kinds[doc.kind];
  if (!Model) {
    console.error(`${manifests}: ${name}: no schema for this kind`);
    failed++;
    continue;
  }
  try {
    new Model(doc).validate();
    checked++;
    console.log(`${manifests}: ${name} matches its CRD schema`);
  } catch (err) {
    failed++;
    console.error(`${manifests}: ${name}: ${err.message}`);
  }
}
process.exit(failed ? 1 : 0);
