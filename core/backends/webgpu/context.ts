/**
 * The device side of the WebGPU backend: limits, pipeline cache, buffer pool, and the
 * batched command encoder that every kernel is recorded into.
 *
 * Dispatches go into one compute pass of one encoder; the encoder is submitted every
 * `batchSize` dispatches and before each read. Each dispatch's uniform parameters take a
 * 256-byte slot of a per-batch uniform buffer that is written with one `writeBuffer`
 * just before the submit. Compile errors are caught with an error scope around pipeline
 * creation only (never per dispatch) and reported, with line numbers, by the next `read`.
 */

import type { Backend, DType } from "../../backend.ts";
import { bucketBytes, BufferPool, GpuStorage, STORAGE_USAGE } from "./buffers.ts";
import { assembleWgsl, type KernelDef, numberLines, type ParamValues } from "./kernel.ts";

/** The limits the backend checks shapes against (the adapter's, as requested). */
export interface DeviceLimits {
  maxStorageBuffersPerShaderStage: number;
  maxStorageBufferBindingSize: number;
  maxBufferSize: number;
  maxComputeWorkgroupStorageSize: number;
  maxComputeInvocationsPerWorkgroup: number;
  maxComputeWorkgroupsPerDimension: number;
  maxComputeWorkgroupSizeX: number;
  maxComputeWorkgroupSizeY: number;
  maxComputeWorkgroupSizeZ: number;
  minUniformBufferOffsetAlignment: number;
}

export const LIMIT_NAMES: readonly (keyof DeviceLimits)[] = [
  "maxStorageBuffersPerShaderStage",
  "maxStorageBufferBindingSize",
  "maxBufferSize",
  "maxComputeWorkgroupStorageSize",
  "maxComputeInvocationsPerWorkgroup",
  "maxComputeWorkgroupsPerDimension",
  "maxComputeWorkgroupSizeX",
  "maxComputeWorkgroupSizeY",
  "maxComputeWorkgroupSizeZ",
];

export class LimitError extends Error {
  constructor(op: string, limit: keyof DeviceLimits, needed: number, allowed: number) {
    super(`${op}: needs ${limit} >= ${needed}, but this device allows ${allowed}`);
    this.name = "LimitError";
  }
}

interface CompiledKernel {
  def: KernelDef;
  pipeline: GPUComputePipeline;
  layout: GPUBindGroupLayout;
}

const SLOT_BYTES = 256;

export class GpuContext {
  readonly limits: DeviceLimits;
  /** Dispatches recorded per submit. */
  readonly batchSize = 16;
  /** Workgroup size for one-thread-per-element kernels. */
  readonly wg1d: number;

  private pipelines = new Map<string, CompiledKernel>();
  /** WGSL text -> compile error, for kernels that failed (never retried). */
  private failed = new Map<string, string>();
  private failedLabels = new Set<string>();
  private compileChecks: Promise<string | null>[] = [];
  private deviceErrors: string[] = [];
  private storagePool: BufferPool;
  private uniformPool: BufferPool;
  private live = 0;

  private encoder: GPUCommandEncoder | null = null;
  private pass: GPUComputePassEncoder | null = null;
  private dispatches = 0;
  private slotBytes: number;
  private slab: GPUBuffer | null = null;
  private slabHost: Uint32Array;
  private slotsUsed = 0;

  constructor(readonly device: GPUDevice, limits: DeviceLimits, private owner: Backend) {
    this.limits = limits;
    this.wg1d = Math.min(
      256,
      limits.maxComputeInvocationsPerWorkgroup,
      limits.maxComputeWorkgroupSizeX,
    );
    this.slotBytes = Math.max(SLOT_BYTES, limits.minUniformBufferOffsetAlignment);
    this.slabHost = new Uint32Array((this.slotBytes / 4) * this.batchSize);
    this.storagePool = new BufferPool(device, STORAGE_USAGE);
    this.uniformPool = new BufferPool(device, GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST);
    device.addEventListener("uncapturederror", (e) => {
      const err = (e as GPUUncapturedErrorEvent).error;
      this.deviceErrors.push(err?.message ?? String(err));
    });
    device.lost.then((info) => {
      if (info.reason !== "destroyed") this.deviceErrors.push(`device lost: ${info.message}`);
    });
  }

  // ---------------------------------------------------------------- storages

  liveStorages(): number {
    return this.live;
  }

  /** A new storage of `length` elements; zero-filled when `zero` is set. */
  alloc(dtype: DType, length: number, zero: boolean, op = "alloc"): GpuStorage {
    if (!Number.isInteger(length) || length < 0) {
      throw new Error(`${op}: length must be a non-negative integer, got ${length}`);
    }
    const bytes = length * 4;
    const { maxBufferSize, maxStorageBufferBindingSize } = this.limits;
    if (bytes > maxBufferSize) {
      throw new LimitError(`${op} (${length} x ${dtype})`, "maxBufferSize", bytes, maxBufferSize);
    }
    if (bytes > maxStorageBufferBindingSize) {
      throw new LimitError(
        `${op} (${length} x ${dtype})`,
        "maxStorageBufferBindingSize",
        bytes,
        maxStorageBufferBindingSize,
      );
    }
    let size = bucketBytes(bytes);
    if (size > Math.min(maxBufferSize, maxStorageBufferBindingSize)) {
      size = Math.ceil(bytes / 16) * 16;
    }
    const { buffer, fresh } = this.storagePool.acquire(size, op);
    if (zero && !fresh) {
      this.endPass();
      this.ensureEncoder().clearBuffer(buffer);
    }
    this.live++;
    return new GpuStorage(this.owner, dtype, length, buffer);
  }

  release(s: GpuStorage): void {
    if (s.released) throw new Error(`release: storage (${s.length} x ${s.dtype}) already released`);
    s.released = true;
    this.live--;
    this.storagePool.release(s.buffer);
  }

  fromHost(data: Float32Array | Int32Array): GpuStorage {
    const dtype: DType = data instanceof Float32Array ? "f32" : "i32";
    const s = this.alloc(dtype, data.length, false, "fromHost");
    if (data.length > 0) {
      this.device.queue.writeBuffer(
        s.buffer,
        0,
        data.buffer as ArrayBuffer,
        data.byteOffset,
        data.byteLength,
      );
    }
    return s;
  }

  /** Copy whole elements between storages (offsets and count in elements). */
  copyElements(
    src: GpuStorage,
    srcOff: number,
    dst: GpuStorage,
    dstOff: number,
    count: number,
  ): void {
    if (count === 0) return;
    this.endPass();
    this.ensureEncoder().copyBufferToBuffer(
      src.buffer,
      srcOff * 4,
      dst.buffer,
      dstOff * 4,
      count * 4,
    );
  }

  async read(s: GpuStorage): Promise<Float32Array | Int32Array> {
    if (s.released) throw new Error(`read: storage (${s.length} x ${s.dtype}) was released`);
    const bytes = s.length * 4;
    let staging: GPUBuffer | null = null;
    if (bytes > 0) {
      staging = this.device.createBuffer({
        size: Math.ceil(bytes / 16) * 16,
        usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
        label: "read staging",
      });
      this.endPass();
      this.ensureEncoder().copyBufferToBuffer(s.buffer, 0, staging, 0, bytes);
    }
    this.flush();
    await this.throwPendingErrors();
    const out = s.dtype === "f32" ? new Float32Array(s.length) : new Int32Array(s.length);
    if (staging) {
      await staging.mapAsync(GPUMapMode.READ);
      new Uint8Array(out.buffer).set(new Uint8Array(staging.getMappedRange(0, bytes)));
      staging.unmap();
      staging.destroy();
    }
    await this.throwPendingErrors();
    return out;
  }

  /** Wait for compile checks and report any device error raised since the last check. */
  async throwPendingErrors(): Promise<void> {
    const checks = this.compileChecks;
    this.compileChecks = [];
    const found = (await Promise.all(checks)).filter((m): m is string => m !== null);
    // Uses of a pipeline that failed to compile only repeat the compile error: drop them.
    const consequential = (m: string) =>
      [...this.failedLabels].some((l) => m.includes(`'${l}' label is invalid`));
    found.push(...this.deviceErrors.splice(0).filter((m) => !consequential(m)));
    if (found.length > 0) throw new Error(`WebGPU error:\n${found.join("\n\n")}`);
  }

  // ---------------------------------------------------------------- pipelines

  private compile(def: KernelDef): CompiledKernel {
    const wgsl = assembleWgsl(def);
    const cached = this.pipelines.get(wgsl);
    if (cached) return cached;
    const earlier = this.failed.get(wgsl);
    if (earlier) throw new Error(earlier);
    this.checkKernelLimits(def);
    const entries: GPUBindGroupLayoutEntry[] = [
      { binding: 0, visibility: GPUShaderStage.COMPUTE, buffer: { type: "uniform" } },
      ...def.bindings.map((b, i): GPUBindGroupLayoutEntry => ({
        binding: i + 1,
        visibility: GPUShaderStage.COMPUTE,
        buffer: { type: b.access === "read" ? "read-only-storage" : "storage" },
      })),
    ];
    this.device.pushErrorScope("validation");
    const module = this.device.createShaderModule({ code: wgsl, label: def.name });
    const layout = this.device.createBindGroupLayout({ entries, label: def.name });
    const pipeline = this.device.createComputePipeline({
      layout: this.device.createPipelineLayout({ bindGroupLayouts: [layout] }),
      compute: { module, entryPoint: "main" },
      label: def.name,
    });
    const check = this.device.popErrorScope().then(async (err) => {
      if (!err) return null;
      const info = await module.getCompilationInfo();
      const msgs = info.messages
        .filter((m) => m.type === "error")
        .map((m) => `line ${m.lineNum}:${m.linePos}: ${m.message.trim()}`);
      const report =
        `kernel '${def.name}' failed to compile: ${err.message.trim()}\n${msgs.join("\n")}\n` +
        `--- source ---\n${numberLines(wgsl)}`;
      this.pipelines.delete(wgsl);
      this.failed.set(wgsl, report);
      this.failedLabels.add(def.name);
      return report;
    });
    this.compileChecks.push(check);
    const compiled = { def, pipeline, layout };
    this.pipelines.set(wgsl, compiled);
    return compiled;
  }

  private checkKernelLimits(def: KernelDef): void {
    const l = this.limits;
    const [x, y = 1, z = 1] = def.workgroupSize;
    if (def.bindings.length > l.maxStorageBuffersPerShaderStage) {
      throw new LimitError(
        def.name,
        "maxStorageBuffersPerShaderStage",
        def.bindings.length,
        l.maxStorageBuffersPerShaderStage,
      );
    }
    if (x * y * z > l.maxComputeInvocationsPerWorkgroup) {
      throw new LimitError(
        def.name,
        "maxComputeInvocationsPerWorkgroup",
        x * y * z,
        l.maxComputeInvocationsPerWorkgroup,
      );
    }
    if (x > l.maxComputeWorkgroupSizeX) {
      throw new LimitError(def.name, "maxComputeWorkgroupSizeX", x, l.maxComputeWorkgroupSizeX);
    }
    if (y > l.maxComputeWorkgroupSizeY) {
      throw new LimitError(def.name, "maxComputeWorkgroupSizeY", y, l.maxComputeWorkgroupSizeY);
    }
    if (z > l.maxComputeWorkgroupSizeZ) {
      throw new LimitError(def.name, "maxComputeWorkgroupSizeZ", z, l.maxComputeWorkgroupSizeZ);
    }
    const shared = def.workgroupBytes ?? 0;
    if (shared > l.maxComputeWorkgroupStorageSize) {
      throw new LimitError(
        def.name,
        "maxComputeWorkgroupStorageSize",
        shared,
        l.maxComputeWorkgroupStorageSize,
      );
    }
  }

  /** Number of compiled pipelines (for tests of the cache). */
  get pipelineCount(): number {
    return this.pipelines.size;
  }

  // ---------------------------------------------------------------- dispatch

  /**
   * Record one dispatch of `def` over `groups` workgroups with the given parameters and
   * storages (bound in the order of `def.bindings`). Nothing is recorded for empty grids.
   */
  dispatch(
    def: KernelDef,
    params: ParamValues,
    storages: readonly GpuStorage[],
    groups: readonly [number, number?, number?],
  ): void {
    const [gx, gy = 1, gz = 1] = groups;
    if (gx === 0 || gy === 0 || gz === 0) return;
    const maxG = this.limits.maxComputeWorkgroupsPerDimension;
    const biggest = Math.max(gx, gy, gz);
    if (biggest > maxG) {
      throw new LimitError(
        `${def.name} (grid ${gx}x${gy}x${gz})`,
        "maxComputeWorkgroupsPerDimension",
        biggest,
        maxG,
      );
    }
    if (storages.length !== def.bindings.length) {
      throw new Error(
        `${def.name}: expected ${def.bindings.length} storages, got ${storages.length}`,
      );
    }
    for (const s of storages) {
      if (s.released) {
        throw new Error(`${def.name}: a storage (${s.length} x ${s.dtype}) was released`);
      }
    }
    const kernel = this.compile(def);
    if (def.params.bytes > this.slotBytes) {
      throw new Error(
        `${def.name}: ${def.params.bytes} bytes of parameters exceed the ${this.slotBytes}-byte slot`,
      );
    }
    if (this.slotsUsed === this.batchSize) this.flush();
    const encoder = this.ensureEncoder();
    if (!this.slab) {
      this.slab = this.uniformPool.acquire(this.slotBytes * this.batchSize, "params").buffer;
    }
    const slot = this.slotsUsed++;
    const slotWords = this.slotBytes / 4;
    const view = this.slabHost.subarray(slot * slotWords, slot * slotWords + def.params.words);
    view.fill(0);
    def.params.pack(params, view, def.name);
    const bindGroup = this.device.createBindGroup({
      layout: kernel.layout,
      entries: [
        {
          binding: 0,
          resource: { buffer: this.slab, offset: slot * this.slotBytes, size: def.params.bytes },
        },
        ...storages.map((s, i) => ({ binding: i + 1, resource: { buffer: s.buffer } })),
      ],
    });
    if (!this.pass) this.pass = encoder.beginComputePass();
    this.pass.setPipeline(kernel.pipeline);
    this.pass.setBindGroup(0, bindGroup);
    this.pass.dispatchWorkgroups(gx, gy, gz);
    this.dispatches++;
    if (this.dispatches >= this.batchSize) this.flush();
  }

  /**
   * Workgroup grid for `count` workgroups laid out in x, spilling into y when x would
   * pass maxComputeWorkgroupsPerDimension. Kernels recover the index as
   * `wid.y * nwg.x + wid.x` and must ignore indices >= count.
   */
  grid(count: number, op: string): [number, number] {
    const maxG = this.limits.maxComputeWorkgroupsPerDimension;
    if (count <= maxG) return [count, 1];
    const gy = Math.ceil(count / maxG);
    if (gy > maxG) {
      throw new LimitError(
        `${op} (${count} workgroups)`,
        "maxComputeWorkgroupsPerDimension",
        gy,
        maxG,
      );
    }
    return [Math.ceil(count / gy), gy];
  }

  /** Grid for one thread per element with `wg` threads per workgroup. */
  grid1d(elements: number, op: string, wg = this.wg1d): [number, number] {
    return this.grid(Math.ceil(elements / wg), op);
  }

  // ---------------------------------------------------------------- submit

  private ensureEncoder(): GPUCommandEncoder {
    if (!this.encoder) this.encoder = this.device.createCommandEncoder();
    return this.encoder;
  }

  private endPass(): void {
    if (this.pass) {
      this.pass.end();
      this.pass = null;
    }
  }

  /** Submit everything recorded so far. */
  flush(): void {
    if (!this.encoder) {
      this.storagePool.afterSubmit();
      return;
    }
    this.endPass();
    if (this.slab && this.slotsUsed > 0) {
      this.device.queue.writeBuffer(
        this.slab,
        0,
        this.slabHost.buffer as ArrayBuffer,
        0,
        this.slotsUsed * this.slotBytes,
      );
    }
    this.device.queue.submit([this.encoder.finish()]);
    this.encoder = null;
    if (this.slab) this.uniformPool.release(this.slab);
    this.slab = null;
    this.slotsUsed = 0;
    this.dispatches = 0;
    this.storagePool.afterSubmit();
    this.uniformPool.afterSubmit();
  }

  /** Resolves when all submitted work has finished. */
  async sync(): Promise<void> {
    this.flush();
    await this.device.queue.onSubmittedWorkDone();
    await this.throwPendingErrors();
  }

  trim(): void {
    this.flush();
    this.storagePool.trim();
    this.uniformPool.trim();
  }
}
