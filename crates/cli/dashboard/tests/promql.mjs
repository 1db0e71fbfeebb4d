// Parses PromQL expressions with the Prometheus project's own parser (@prometheus-io/lezer-promql, the grammar of
// Prometheus's web UI): reads a JSON array of {"name", "expr"} on stdin, prints a JSON array of
// {"name", "error"} for each expression that does not parse (empty: all parse). Used by the chart's tests for the
// PrometheusRule's alerts and the Grafana dashboard's queries.
import { parser } from '@prometheus-io/lezer-promql';

let input = '';
for await (const chunk of process.stdin) input += chunk;
const failures = [];
for (const { name, expr } of JSON.parse(input)) {
  const tree = parser.parse(expr);
  let error;
  tree.iterate({
    enter(node) {
      if (node.type.isError && error === undefined) {
        error = `syntax error at ${node.from}: …${expr.slice(Math.max(0, node.from - 20), node.from + 20)}…`;
      }
    },
  });
  if (!expr.trim()) error = 'empty expression';
  if (error) failures.push({ name, error });
}
console.log(JSON.stringify(failures));
