// Kernel buffer sizes for a Bun.udpSocket. Bun's UDP socket has no option for SO_RCVBUF / SO_SNDBUF (its
// node:dgram layer reaches them through an internal binding), so they are set with setsockopt(2) from libc
// through bun:ffi, on Linux only. Best effort: without them the kernel defaults apply, with more loss under
// bursts.

/** Linux <asm-generic/socket.h> (x86, arm; not mips, sparc, parisc, alpha). */
const SOL_SOCKET = 1;
const SO_SNDBUF = 7;
const SO_RCVBUF = 8;
/** Architectures where the constants above hold. */
const GENERIC_SOCKET_ARCHS = new Set(["x64", "arm64", "arm", "ia32", "riscv64", "s390x", "ppc64", "loong64"]);

type SetSockOpt = (fd: number, level: number, name: number, value: Int32Array) => number;
let setsockopt: SetSockOpt | null | undefined;

async function loadSetSockOpt(): Promise<SetSockOpt | null> {
  if (process.platform !== "linux" || !GENERIC_SOCKET_ARCHS.has(process.arch)) return null;
  const { dlopen, FFIType, ptr } = await import("bun:ffi");
  // glibc names its libc libc.so.6; musl answers to libc.so.
  for (const name of ["libc.so.6", "libc.so"]) {
    try {
      const lib = dlopen(name, { setsockopt: { args: [FFIType.i32, FFIType.i32, FFIType.i32, FFIType.ptr, FFIType.u32], returns: FFIType.i32 } });
      return (fd, level, opt, value) => lib.symbols.setsockopt(fd, level, opt, ptr(value), value.byteLength);
    } catch {
      // try the next name
    }
  }
  return null;
}

/** Asks for `recvBytes` / `sendBytes` (0 = leave as is) on socket `fd`; false when they could not be set. */
export async function setSocketBuffers(fd: number, recvBytes: number, sendBytes: number): Promise<boolean> {
  try {
    if (setsockopt === undefined) setsockopt = await loadSetSockOpt();
  } catch {
    setsockopt = null;
  }
  if (!setsockopt) return false;
  let ok = true;
  if (recvBytes > 0) ok = setsockopt(fd, SOL_SOCKET, SO_RCVBUF, new Int32Array([recvBytes])) === 0 && ok;
  if (sendBytes > 0) ok = setsockopt(fd, SOL_SOCKET, SO_SNDBUF, new Int32Array([sendBytes])) === 0 && ok;
  return ok;
}
