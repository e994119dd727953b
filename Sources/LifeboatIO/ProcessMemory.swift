import CLifeboatSystem
import Foundation

/// How a Lifeboat process sets up its memory allocator, once, before its second thread starts.
///
/// glibc's malloc gives threads arenas of their own, up to eight per core. A mirror's transfer
/// threads and an upload's part workers each allocate 8 MiB part buffers and many small
/// objects; memory freed in one thread's arena is not reused by another's, and an arena's heap
/// is rarely returned to the kernel whole. Measured on `Benchmarks/s3-mirror.sh` (10 objects of
/// 20 MiB and 300 small ones, eight transfers at once), peak RSS of the first run: 209.6 MiB
/// with glibc's default, 108.8 MiB with 4 arenas, 87.3 MiB with 2, 87.5 MiB with 1.
public enum ProcessMemory {
    /// Arenas a Lifeboat process uses unless `MALLOC_ARENA_MAX` says otherwise.
    public static let defaultArenas: Int32 = 2

    /// The arena limit to set: none when `MALLOC_ARENA_MAX` is in the environment (glibc has
    /// read it already, and an operator's setting wins), else `defaultArenas`.
    public static func arenaLimit(environment: [String: String]) -> Int32? {
        environment["MALLOC_ARENA_MAX"] == nil ? defaultArenas : nil
    }

    /// Sets the arena limit. Call first thing in `main`: arenas made before it stay.
    public static func configure(environment: [String: String] = ProcessInfo.processInfo.environment) {
        guard let limit = arenaLimit(environment: environment) else { return }
        _ = lifeboat_limit_malloc_arenas(limit)
    }
}
