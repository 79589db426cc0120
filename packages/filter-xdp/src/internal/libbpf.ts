/**
 * Raw libbpf (libbpf.so.1) and libc bindings through koffi. Internal: use src/loader.ts.
 * libbpf 1.x returns negative errno values directly.
 */
import koffi from "koffi"

let cached: LibBpf | undefined

/** The subset of libbpf / libc the loader calls. Pointers are opaque values. */
export interface LibBpf {
  readonly objectOpenFile: (path: string, opts: null) => unknown
  readonly objectLoad: (obj: unknown) => number
  readonly objectClose: (obj: unknown) => void
  readonly findProgram: (obj: unknown, name: string) => unknown
  readonly programFd: (prog: unknown) => number
  readonly findMap: (obj: unknown, name: string) => unknown
  readonly mapFd: (map: unknown) => number
  readonly mapValueSize: (map: unknown) => number
  /** mmap(2) a BPF_F_MMAPABLE map shared read/write; null on failure (see lastErrno). */
  readonly mmapShared: (fd: number, bytes: number) => unknown
  readonly munmap: (ptr: unknown, bytes: number) => number
  readonly mapUpdate: (fd: number, key: Uint8Array, value: Uint8Array, flags: number) => number
  readonly mapLookup: (fd: number, key: Uint8Array, value: Uint8Array) => number
  readonly mapDelete: (fd: number, key: Uint8Array) => number
  readonly mapNextKey: (fd: number, key: Uint8Array | null, next: Uint8Array) => number
  readonly mapUpdateBatch: (fd: number, keys: Uint8Array, values: Uint8Array, count: Uint32Array, opts: null) => number
  readonly mapLookupBatch: (
    fd: number, inBatch: Uint8Array | null, outBatch: Uint8Array, keys: Uint8Array, values: Uint8Array,
    count: Uint32Array, opts: null
  ) => number
  readonly progTestRun: (fd: number, opts: unknown) => number
  /** `opts`: a struct bpf_xdp_attach_opts (sz, old_prog_fd) or null. */
  readonly xdpAttach: (ifindex: number, progFd: number, flags: number, opts: Uint8Array | null) => number
  readonly xdpDetach: (ifindex: number, flags: number, opts: Uint8Array | null) => number
  /** The id of the program attached in the mode `flags` names (0: none) into `id[0]`. */
  readonly xdpQueryId: (ifindex: number, flags: number, id: Uint32Array) => number
  readonly progFdById: (id: number) => number
  readonly mapFdById: (id: number) => number
  /** bpf_obj_get_info_by_fd: `info` is foreign memory (see alloc), `len[0]` its size in and out. */
  readonly objInfo: (fd: number, info: unknown, len: Uint32Array) => number
  readonly closeFd: (fd: number) => number
  readonly numPossibleCpus: () => number
  readonly ifNameToIndex: (name: string) => number
  readonly strerror: (errno: number) => string
  readonly alloc: (bytes: number) => { ptr: unknown; view: Uint8Array }
  /** An ArrayBuffer over `bytes` bytes of foreign memory at `ptr` (not owned). */
  readonly view: (ptr: unknown, bytes: number) => ArrayBuffer
}

/** Load (once) the libbpf and libc bindings; throws if libbpf.so.1 is missing. */
export const libbpf = (): LibBpf => {
  if (cached) return cached
  const bpf = koffi.load("libbpf.so.1")
  const libc = koffi.load("libc.so.6")
  koffi.opaque("bpf_object")
  koffi.opaque("bpf_program")
  koffi.opaque("bpf_map")
  const f = (sig: string) => bpf.func(sig) as (...args: Array<unknown>) => any
  cached = {
    objectOpenFile: f("bpf_object *bpf_object__open_file(const char *path, const void *opts)"),
    objectLoad: f("int bpf_object__load(bpf_object *obj)"),
    objectClose: f("void bpf_object__close(bpf_object *obj)"),
    findProgram: f("bpf_program *bpf_object__find_program_by_name(bpf_object *obj, const char *name)"),
    programFd: f("int bpf_program__fd(bpf_program *prog)"),
    findMap: f("bpf_map *bpf_object__find_map_by_name(bpf_object *obj, const char *name)"),
    mapFd: f("int bpf_map__fd(bpf_map *map)"),
    mapValueSize: f("uint32_t bpf_map__value_size(bpf_map *map)"),
    mapUpdate: f("int bpf_map_update_elem(int fd, const void *key, const void *value, uint64_t flags)"),
    mapLookup: f("int bpf_map_lookup_elem(int fd, const void *key, void *value)"),
    mapDelete: f("int bpf_map_delete_elem(int fd, const void *key)"),
    mapNextKey: f("int bpf_map_get_next_key(int fd, const void *key, void *next_key)"),
    mapUpdateBatch: f(
      "int bpf_map_update_batch(int fd, const void *keys, const void *values, uint32_t *count, const void *opts)"
    ),
    mapLookupBatch: f(
      "int bpf_map_lookup_batch(int fd, void *in_batch, void *out_batch, void *keys, void *values, uint32_t *count, const void *opts)"
    ),
    progTestRun: f("int bpf_prog_test_run_opts(int prog_fd, void *opts)"),
    xdpAttach: f("int bpf_xdp_attach(int ifindex, int prog_fd, uint32_t flags, const void *opts)"),
    xdpDetach: f("int bpf_xdp_detach(int ifindex, uint32_t flags, const void *opts)"),
    xdpQueryId: f("int bpf_xdp_query_id(int ifindex, int flags, uint32_t *prog_id)"),
    progFdById: f("int bpf_prog_get_fd_by_id(uint32_t id)"),
    mapFdById: f("int bpf_map_get_fd_by_id(uint32_t id)"),
    objInfo: f("int bpf_obj_get_info_by_fd(int bpf_fd, void *info, uint32_t *info_len)"),
    closeFd: libc.func("int close(int fd)") as (fd: number) => number,
    numPossibleCpus: f("int libbpf_num_possible_cpus(void)"),
    mmapShared: (() => {
      const mmap = libc.func("void *mmap(void *addr, size_t length, int prot, int flags, int fd, intptr_t offset)")
      const MAP_FAILED = -1n
      return (fd: number, bytes: number) => {
        const p = mmap(null, bytes, 3 /* PROT_READ|PROT_WRITE */, 1 /* MAP_SHARED */, fd, 0)
        return p === null || koffi.address(p) === BigInt.asUintN(64, MAP_FAILED) ? null : p
      }
    })(),
    munmap: libc.func("int munmap(void *addr, size_t length)") as (ptr: unknown, bytes: number) => number,
    ifNameToIndex: libc.func("unsigned int if_nametoindex(const char *ifname)") as (name: string) => number,
    strerror: libc.func("const char *strerror(int errnum)") as (errno: number) => string,
    alloc: (bytes: number) => {
      const ptr = koffi.alloc("uint8_t", bytes)
      return { ptr, view: new Uint8Array(koffi.view(ptr, bytes)) }
    },
    view: (ptr: unknown, bytes: number) => koffi.view(ptr, bytes)
  }
  return cached
}

/** The current errno (for calls that return NULL). */
export const lastErrno = (): number => koffi.errno()
