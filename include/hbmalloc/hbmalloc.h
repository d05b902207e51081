/* hbmalloc C ABI.
 *
 * hbm_malloc / hbm_free have exactly the signatures that
 * torch.cuda.memory.CUDAPluggableAllocator loads. Every function is safe to
 * call from any thread and never lets a C++ exception escape: failures return
 * NULL / a non-zero code and leave a message in hbm_last_error().
 *
 * Configuration comes from HBMALLOC_CONF ("key:value,key:value") on first use,
 * or from hbm_configure() before the first allocation.
 *
 * Recording, read from the environment on first use:
 *   HBMALLOC_TRACE=path      every device's operations go to one .hbt trace
 *                            (docs/hbt-format.md), completed at normal exit and
 *                            flushed every second or 1024 events on the way.
 *   HBMALLOC_OOM_DUMP=dir    on out of memory, the recent past of the device is
 *                            written to dir as a replayable .hbt with a report
 *                            (.txt, .html); the error text names the files.
 *   HBMALLOC_OOM_DUMP_EVENTS=n  events per device kept for that dump (262144).
 */
#ifndef HBMALLOC_HBMALLOC_H_
#define HBMALLOC_HBMALLOC_H_

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h> /* ssize_t */

#ifndef __CUDA_RUNTIME_API_H__
/* Same definition as CUDA's driver_types.h, so this header needs no CUDA. */
typedef struct CUstream_st* cudaStream_t;
#endif

#ifdef __cplusplus
extern "C" {
#endif

#define HBM_API __attribute__((visibility("default")))

/* Allocation hooks (CUDAPluggableAllocator). size 0 returns NULL without error;
 * a failure (out of memory, bad argument) returns NULL and sets the error. */
HBM_API void* hbm_malloc(ssize_t size, int device, cudaStream_t stream);
/* size must be the size passed to hbm_malloc (or -1 to skip the check). A bad
 * free (double free, unknown pointer, size mismatch) is ignored and sets the
 * error. */
HBM_API void hbm_free(void* ptr, ssize_t size, int device, cudaStream_t stream);

/* Replaces the configuration (same syntax as HBMALLOC_CONF). Allowed only
 * before the first allocation. Returns 0 on success. */
HBM_API int hbm_configure(const char* conf);
/* PyTorch's init hook: creates the per-device allocators eagerly. */
HBM_API void hbm_init(int device_count);
/* Releases every cached (free) segment back to the backend, on all devices. */
HBM_API void hbm_empty_cache(void);
/* Caps reserved memory of `device` at fraction * device capacity (0 < f <= 1). */
HBM_API void hbm_set_memory_fraction(double fraction, int device);
/* Device `peer` may read and write all memory of `device`, held now and
 * later (page-mapped memory is reachable only by the devices granted access
 * to it; cudaDeviceEnablePeerAccess does not extend to it). 0 on success, -1
 * with hbm_last_error() set. */
HBM_API int hbm_enable_peer_access(int device, int peer);
/* Sharing a block with another process. Page-mapped memory goes as pieces:
 * a POSIX file descriptor per granule (send them over a Unix socket with
 * SCM_RIGHTS) and its bytes. A plain segment (vmm:off) goes as its CUDA IPC
 * handle, in the block's segment_handle, with no pieces. */
typedef struct hbm_ipc_piece {
  int fd;
  uint64_t bytes;
} hbm_ipc_piece;
typedef struct hbm_ipc_block {
  uint64_t offset; /* where the block starts in its first piece, or in its segment */
  uint64_t size;   /* the block's bytes */
  int segment;     /* 1: a plain segment, segment_handle holds its cudaIpcMemHandle_t */
  unsigned char segment_handle[64];
} hbm_ipc_block;
/* Describes the live block at ptr of `device` in *block and writes its pieces
 * (address order). Returns how many pieces it has (0 for a plain segment);
 * when more than max_pieces, no descriptor is opened and nothing written to
 * pieces: call again with room for them. The descriptors written are new and
 * the caller's to close. -1 with hbm_last_error() set when the block cannot be
 * shared (not a live block, backend other than cuda, ipc:off). */
HBM_API long hbm_ipc_export(void* ptr, int device, hbm_ipc_block* block, hbm_ipc_piece* pieces, size_t max_pieces);
/* Maps a block another process exported on `device`: returns where it
 * starts, or NULL with hbm_last_error() set. The descriptors stay the
 * caller's. Close it with hbm_ipc_close, never hbm_free. */
HBM_API void* hbm_ipc_open(int device, const hbm_ipc_block* block, const hbm_ipc_piece* pieces, size_t n_pieces);
/* Unmaps a block hbm_ipc_open returned. 0 on success, -1 with hbm_last_error() set. */
HBM_API int hbm_ipc_close(void* ptr, int device);
/* The block at ptr is also used on `stream`: its memory is not reused until
 * the work queued on `stream` at free time has completed. */
HBM_API void hbm_record_stream(void* ptr, cudaStream_t stream);
/* Resets the peak of every statistic of `device` to its current value. */
HBM_API void hbm_reset_peak_stats(int device);

/* Writes the statistics of `device` as one JSON object, PyTorch's key names
 * ("allocated_bytes.all.current", ...), into buf (always NUL-terminated when
 * cap > 0). Returns the length the full text needs, excluding the NUL; a
 * return >= cap means buf was too small. Returns 0 and sets the error when
 * the device cannot be initialised. */
HBM_API size_t hbm_stats_json(int device, char* buf, size_t cap);
/* Writes the statistics of `device` as a table in the manner of
 * torch.cuda.memory_summary(), then hbmalloc's own figures (largest free
 * block, external fragmentation, limit), into buf; same contract as
 * hbm_stats_json. */
HBM_API size_t hbm_memory_summary(int device, char* buf, size_t cap);
/* Walks every structure of `device` and checks that blocks tile segments
 * without overlap and that the statistics equal what the structures hold.
 * Returns 0 when all holds, otherwise -1 with the violation in hbm_last_error. */
HBM_API int hbm_check_invariants(int device);

/* Writes what every initialised device holds now (segments and blocks) to
 * path as a PyTorch memory snapshot pickle, the schema of
 * torch.cuda.memory._dump_snapshot, which memory_viz and `hbmalloc report`
 * open. Returns 0, or -1 with the error when path cannot be written. */
HBM_API int hbm_dump_snapshot(const char* path);

/* Starts recording every device's operations (allocators created later too)
 * to an .hbt trace at path; what they hold now is the trace's starting
 * picture. Returns 0, or -1 with the error when path cannot be created or a
 * trace is already being written. */
HBM_API int hbm_trace_start(const char* path);
/* Completes the trace being written (HBMALLOC_TRACE or hbm_trace_start) and
 * closes it. Returns 0 (also when none is being written), or -1 with the error
 * when a write failed. */
HBM_API int hbm_trace_stop(void);

/* The last error of the calling thread ("" when none). Valid until the next
 * hbmalloc call on this thread. */
HBM_API const char* hbm_last_error(void);
/* Clears the calling thread's last error. */
HBM_API void hbm_clear_error(void);

#ifdef __cplusplus
}
#endif

#endif /* HBMALLOC_HBMALLOC_H_ */
