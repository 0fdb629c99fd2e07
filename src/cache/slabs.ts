// Reused read buffers of the raw-socket origin transport: a socket reads straight into
// a slab, the fill writes the bytes to disk from it and gives it back. Keeping a few
// free slabs spares the allocation, page faults and garbage collection of a buffer per
// socket read (what node:http's body chunks cost a fill).

/** Bytes per slab: a socket read may fill one (1 MiB reads cost less than 256 KiB ones: 0.53 vs 0.61 s on the main thread per GiB). */
export const SLAB = 1 << 20;
/** Free slabs kept (8 MiB); more than that are left to the garbage collector. */
const KEEP = 8;

const free: Buffer[] = [];

export function takeSlab(): Buffer {
  return free.pop() ?? Buffer.allocUnsafeSlow(SLAB);
}

export function giveSlab(slab: Buffer): void {
  if (free.length < KEEP && slab.length === SLAB) free.push(slab);
}
