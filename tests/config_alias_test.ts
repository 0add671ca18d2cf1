/**
 * YAML aliases in task files: every use of an anchor is its own value, so a `--set` on one
 * step's copy leaves the other steps that reuse the anchor as written.
 */

import { expect, it } from "./lib/test.ts";
import { applyOverrides, parseOverrides, parseYaml } from "../core/config.ts";

it("an override on one use of a YAML anchor changes that use only", () => {
  const doc = parseYaml(
    [
      "steps:",
      "  - params: { dataset: &data { kind: shapes, size: 32 } }",
      "  - params: { dataset: *data }",
      "  - params: { dataset: *data }",
    ].join("\n"),
    "task.yaml",
  ) as { steps: { params: { dataset: Record<string, unknown> } }[] };
  const out = applyOverrides(
    doc,
    parseOverrides(["steps[1].params.dataset.limit=10"]),
  ) as typeof doc;
  expect(out.steps.map((s) => s.params.dataset.limit)).toEqual([undefined, 10, undefined]);
  expect(out.steps[2].params.dataset).toEqual({ kind: "shapes", size: 32 });
  expect(doc.steps[0].params.dataset).not.toBe(doc.steps[2].params.dataset);
});
