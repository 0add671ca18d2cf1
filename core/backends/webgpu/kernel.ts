/**
 * How a WGSL kernel is described before it is compiled.
 *
 * A kernel has a uniform parameter struct (scalars and small u32 arrays, packed on the
 * host into one 256-byte slot of a per-batch uniform buffer) and a list of storage
 * bindings. `assembleWgsl` turns the description into the full shader text; the text is
 * also the pipeline-cache key, so anything baked into it (shapes, dtypes, flags) gives a
 * distinct pipeline.
 */

export type ScalarType = "u32" | "i32" | "f32";

/** A uniform field: a scalar, or (with `len`) a u32 array read as `P.name[i >> 2][i & 3]`. */
export interface ParamField {
  name: string;
  type: ScalarType;
  len?: number;
}

export type ParamValues = Record<string, number | readonly number[]>;

/** Layout of the uniform struct `P`, following WGSL's uniform alignment rules. */
export class ParamLayout {
  readonly fields: readonly ParamField[];
  /** Word offset of each field. */
  private offsets = new Map<string, number>();
  readonly words: number;

  constructor(fields: readonly ParamField[]) {
    this.fields = fields;
    let w = 0;
    for (const f of fields) {
      if (f.len !== undefined) {
        if (f.type !== "u32") throw new Error(`ParamLayout: array field ${f.name} must be u32`);
        w = Math.ceil(w / 4) * 4; // vec4 alignment
        this.offsets.set(f.name, w);
        w += Math.max(1, Math.ceil(f.len / 4)) * 4;
      } else {
        this.offsets.set(f.name, w);
        w += 1;
      }
    }
    this.words = Math.max(4, Math.ceil(w / 4) * 4);
  }

  get bytes(): number {
    return this.words * 4;
  }

  wgslStruct(): string {
    const members = this.fields.map((f) =>
      f.len !== undefined
        ? `  ${f.name}: array<vec4<u32>, ${Math.max(1, Math.ceil(f.len / 4))}>,`
        : `  ${f.name}: ${f.type},`
    );
    if (members.length === 0) members.push("  _unused: u32,");
    return `struct Params {\n${members.join("\n")}\n}`;
  }

  /** Write the values into `out` (a Uint32Array over the slot) as raw 32-bit words. */
  pack(values: ParamValues, out: Uint32Array, kernel: string): void {
    const f32 = new Float32Array(out.buffer, out.byteOffset, out.length);
    const i32 = new Int32Array(out.buffer, out.byteOffset, out.length);
    for (const f of this.fields) {
      const v = values[f.name];
      if (v === undefined) throw new Error(`${kernel}: missing parameter '${f.name}'`);
      const at = this.offsets.get(f.name)!;
      if (f.len !== undefined) {
        const arr = v as readonly number[];
        for (let i = 0; i < f.len; i++) out[at + i] = (arr[i] ?? 0) >>> 0;
      } else if (f.type === "f32") f32[at] = v as number;
      else if (f.type === "i32") i32[at] = v as number;
      else {
        const n = v as number;
        if (!(n >= 0 && n <= 0xffffffff)) {
          throw new Error(`${kernel}: parameter '${f.name}' = ${n} does not fit in u32`);
        }
        out[at] = n >>> 0;
      }
    }
  }
}

export type StorageElement = "f32" | "i32" | "u32" | "vec4<f32>" | "atomic<u32>" | "atomic<i32>";

export interface BindingDecl {
  name: string;
  element: StorageElement;
  access: "read" | "read_write";
}

export interface KernelDef {
  /** Op name, used in every error message about this kernel. */
  name: string;
  params: ParamLayout;
  bindings: readonly BindingDecl[];
  workgroupSize: readonly [number, number?, number?];
  /** Bytes of `var<workgroup>` memory the kernel declares (checked against the limit). */
  workgroupBytes?: number;
  /**
   * Helper functions and the body of `main`. The body sees `gid`, `lid`, `wid`, `nwg`
   * (global/local invocation id, workgroup id, number of workgroups), `lindex`, and the
   * uniform struct `P`.
   */
  helpers?: string;
  body: string;
}

export function assembleWgsl(def: KernelDef): string {
  const [x, y = 1, z = 1] = def.workgroupSize;
  const lines: string[] = [];
  lines.push(`// kernel: ${def.name}`);
  lines.push(def.params.wgslStruct());
  lines.push(`@group(0) @binding(0) var<uniform> P: Params;`);
  def.bindings.forEach((b, i) => {
    lines.push(
      `@group(0) @binding(${i + 1}) var<storage, ${b.access}> ${b.name}: array<${b.element}>;`,
    );
  });
  if (def.helpers) lines.push(def.helpers);
  lines.push(`@compute @workgroup_size(${x}, ${y}, ${z})`);
  lines.push(
    `fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>,`,
  );
  lines.push(
    `        @builtin(local_invocation_index) lindex: u32, @builtin(workgroup_id) wid: vec3<u32>,`,
  );
  lines.push(`        @builtin(num_workgroups) nwg: vec3<u32>) {`);
  lines.push(def.body);
  lines.push(`}`);
  const text = lines.join("\n");
  // After main, so that compile errors keep their line numbers.
  const specials = Object.entries(SPECIAL_FLOAT_FNS).filter(([name]) => text.includes(`${name}(`));
  return specials.length ? [text, ...specials.map(([, code]) => code)].join("\n") : text;
}

/**
 * Non-finite f32 constants as runtime values (see NEG_INF in wgsl.ts for why a plain
 * `bitcast<f32>(0xff800000u)` does not compile under Tint).
 */
export const SPECIAL_FLOAT_FNS: Readonly<Record<string, string>> = {
  digit_neg_inf: "fn digit_neg_inf() -> f32 { var bits = 0xff800000u; return bitcast<f32>(bits); }",
  digit_pos_inf: "fn digit_pos_inf() -> f32 { var bits = 0x7f800000u; return bitcast<f32>(bits); }",
  digit_nan: "fn digit_nan() -> f32 { var bits = 0x7fc00000u; return bitcast<f32>(bits); }",
};

/** Shader source with line numbers, for compile-error reports. */
export function numberLines(src: string): string {
  return src.split("\n").map((l, i) => `${String(i + 1).padStart(4)} | ${l}`).join("\n");
}
