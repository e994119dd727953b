import Foundation
import LifeboatCore
import LifeboatIO

/// A directory a restore writes into: new or empty, and held by this restore alone (an
/// exclusive `flock`, which the kernel drops with the process), so that another restore cannot
/// mix its files in. A restore that fails or is cancelled empties it again (`removeWhatWasRestored`):
/// it was empty, so everything in it is this restore's.
struct RestoreDirectory {
    let path: String
    /// Whether this restore created the directory (it is then removed, not only emptied).
    let created: Bool
    private let lock: DirectoryLock

    /// Creates the directory (mode 0700) or checks that it is empty, and takes it.
    static func claim(_ path: String) throws -> RestoreDirectory {
        let created = !pathExists(path)
        if !created {
            guard isDirectory(path) else {
                throw LifeboatError(.targetNotEmpty, "restore target '\(path)' exists and is not a directory")
            }
        } else {
            // Only the owner may look into what is being restored; restored entries get the
            // modes the backup recorded.
            try makeDirectories(path, mode: 0o700)
        }
        guard let lock = try DirectoryLock.tryExclusive(path) else {
            throw LifeboatError(.targetNotEmpty, "another restore is writing into '\(path)'",
                                hint: "Wait for it to finish, or restore into another directory.")
        }
        let contents = try directoryEntries(path)
        guard contents.isEmpty else {
            lock.release()
            throw LifeboatError(.targetNotEmpty, "restore target '\(path)' is not empty (\(contents.count) entr\(contents.count == 1 ? "y" : "ies"), e.g. '\(contents[0])')",
                                hint: "Restore into a new or empty directory; Lifeboat never overwrites existing files.")
        }
        return RestoreDirectory(path: path, created: created, lock: lock)
    }

    func release() { lock.release() }

    /// Empties the directory (and removes it when this restore created it).
    func removeWhatWasRestored(context: RunContext) {
        do {
            if created {
                try FileManager.default.removeItem(atPath: path)
            } else {
                for name in try directoryEntries(path) {
                    try FileManager.default.removeItem(atPath: path + "/" + name)
                }
            }
            context.logger.info("removed what the failed restore had written", metadata: ["restore.target": "\(path)"])
        } catch {
            context.logger.warning("could not remove what the failed restore had written; remove it before restoring again",
                                   metadata: ["restore.target": "\(path)", "error": "\(error)"])
        }
    }
}
