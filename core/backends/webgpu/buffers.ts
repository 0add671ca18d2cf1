/**
 * GPU storages and the buffer pool behind them.
 *
 * Freed buffers are kept in buckets by size (powers of two up to 4 KiB, then eight steps
 * per power of two, so at most 12.5% is wasted) and reused. A release is deferred until
 * the command buffer that may still use the buffer has been submitted: work is queued in
 * order, so any later use (a new kernel, or `writeBuffer` from the host) runs after it.
 */

import type { Backend, DType, Storage } from "../../backend.ts";

export class GpuStorage implements Storage {
  released = false;
  constructor(
    readonly backend: Backend,
    readonly dtype: DType,
    readonly length: number,
    readonly buffer: GPUBuffer,
  ) {}
}

export const STORAGE_USAGE = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC |
  GPUBufferUsage.COPY_DST;

/** Size class for a request of `bytes` (at least 16, a multiple of 16). */
export function bucketBytes(bytes: number): number {
  const n = Math.max(16, Math.ceil(bytes / 16) * 16);
  if (n <= 4096) return 2 ** Math.ceil(Math.log2(n));
  const step = 2 ** Math.floor(Math.log2(n)) / 8;
  return Math.ceil(n / step) * step;
}

export class BufferPool {
  private free = new Map<number, GPUBuffer[]>();
  /** Released since the last submit; they become reusable once it is submitted. */
  private pending: GPUBuffer[] = [];
  private pooledBytes = 0;

  constructor(private device: GPUDevice, private usage: number) {}

  /** A buffer of exactly `size` bytes (already a bucket size); `fresh` tells if it is zeroed. */
  acquire(size: number, label: string): { buffer: GPUBuffer; fresh: boolean } {
    const list = this.free.get(size);
    const reused = list?.pop();
    if (reused) {
      this.pooledBytes -= size;
      return { buffer: reused, fresh: false };
    }
    return { buffer: this.device.createBuffer({ size, usage: this.usage, label }), fresh: true };
  }

  release(buffer: GPUBuffer): void {
    this.pending.push(buffer);
  }

  /** Call right after `queue.submit`: pending buffers may now be reused. */
  afterSubmit(): void {
    for (const b of this.pending) {
      let list = this.free.get(b.size);
      if (!list) this.free.set(b.size, list = []);
      list.push(b);
      this.pooledBytes += b.size;
    }
    this.pending = [];
  }

  /** Bytes held in the pool, not in use. */
  get idleBytes(): number {
    return this.pooledBytes;
  }

  /** Destroy every idle buffer (pending ones stay until the next submit). */
  trim(): void {
    for (const list of this.free.values()) for (const b of list) b.destroy();
    this.free.clear();
    this.pooledBytes = 0;
  }
}
