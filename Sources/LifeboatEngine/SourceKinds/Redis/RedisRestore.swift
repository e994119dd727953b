import Foundation
import Glibc
import LifeboatArchive
import LifeboatCore
import LifeboatIO

/// Restores a Redis backup: writes its RDB file, under the name the server gave it, into a
/// directory, for a runbook (or a person) to start Redis with. Every chunk is checked against
/// the manifest before it is written, and the whole file against its CRC-64 before it gets its
/// name: the file is written under a temporary name, synced, and linked to its name only when
/// intact (never over an existing file), so a failed or cancelled restore leaves nothing.
struct RedisRestore {
    let manifest: Manifest
    let repository: Repository
    let context: RunContext

    func run(to target: RestoreTarget) throws -> RestoreReport {
        guard case .directory(let directory) = target.location else {
            throw LifeboatError(.usage, "a Redis backup is restored into a directory (its RDB file), not \(target.location)",
                                hint: "Give --to a directory path.")
        }
        let record = try manifest.source.details(as: RedisRecord.self)
        let damaged = "Restore another backup, and run 'lifeboat verify \(manifest.policy) \(manifest.id)'."
        guard manifest.artifacts.count == 1, let artifact = manifest.artifacts.first, artifact.role == .redisRDB else {
            throw LifeboatError(.integrity, "backup \(manifest.id) of policy '\(manifest.policy)' does not hold one RDB artifact (\(manifest.artifacts.map(\.role.description).joined(separator: ", ")))",
                                hint: damaged)
        }
        let name = record.rdbFile
        guard !name.isEmpty, name != ".", name != "..", !name.contains("/"), !name.contains("\0") else {
            throw LifeboatError(.integrity, "backup \(manifest.id) names its RDB file '\(name)', which is not a plain file name", hint: damaged)
        }
        if pathExists(directory) {
            guard isDirectory(directory) else {
                throw LifeboatError(.targetNotEmpty, "restore target '\(directory)' exists and is not a directory")
            }
        } else {
            try makeDirectories(directory, mode: 0o700)
        }
        let path = directory + "/" + name
        guard !pathExists(path) else {
            throw LifeboatError(.targetNotEmpty, "'\(path)' already exists; Lifeboat never overwrites a file",
                                hint: "Move it away (it may be the server's current data), or restore into another directory.")
        }

        let temporary = LocalFile.temporaryName(beside: path)
        let file = try LocalFile.createNew(temporary)
        let summary: RDBCheck.Summary
        do {
            var check = RDBCheck(what: "RDB file '\(name)' of backup \(manifest.id)", hint: damaged)
            let source = try repository.openArtifact(artifact, of: manifest, context: context)
            defer { source.close() }
            // readStream hands over each chunk only once its SHA-256 matched the manifest.
            try readStream(artifact, source: source, stream: name) { bytes in
                try context.cancellation.checkCancelled()
                try check.update(bytes)
                try file.write(bytes)
            }
            summary = try check.finish()
            guard summary.size == record.rdbSize, summary.checksumHex == record.checksum else {
                throw LifeboatError(.integrity, "RDB file '\(name)' of backup \(manifest.id) is \(summary.size) bytes with checksum \(summary.checksumHex ?? "none"), and the manifest says \(record.rdbSize) bytes with \(record.checksum ?? "none")",
                                    hint: damaged)
            }
            try file.sync()
            file.close()
            // link(2), not rename(2): a file that appeared under the name meanwhile is kept.
            guard link(temporary, path) == 0 else {
                let saved = errno
                if saved == EEXIST {
                    throw LifeboatError(.targetNotEmpty, "'\(path)' appeared while the restore wrote it; Lifeboat never overwrites a file",
                                        hint: "Move it away, or restore into another directory.")
                }
                throw LifeboatError(.io, "unable to name the restored RDB file '\(path)': \(errnoText(saved))")
            }
            try LocalFile.remove(temporary)
            try Self.syncDirectory(directory)
        } catch {
            file.close()
            do {
                try LocalFile.remove(temporary)
            } catch {
                context.logger.warning("could not remove the failed restore's temporary file; remove it",
                                       metadata: ["file": "\(temporary)", "error": "\(error)"])
            }
            throw error
        }
        context.logger.info("RDB file restored", metadata: ["redis.file": "\(path)", "redis.rdb_bytes": "\(summary.size)"])

        var report = RestoreReport(policy: manifest.policy, backup: manifest.id, target: directory,
                                   restored: ["\(name): \(summary.size) bytes, RDB version \(summary.version), from Redis \(record.serverVersion) at \(record.host):\(record.port) (\(record.mode))"])
        let serverDirectory = record.serverPath.map { "\(($0 as NSString).deletingLastPathComponent) on the server backed up" } ?? "CONFIG GET dir"
        report.next = [
            "Stop the Redis server, then copy \(path) into its dir (\(serverDirectory)) as its dbfilename (\(name)), owned by the user Redis runs as (chown redis:redis).",
        ]
        if record.aofEnabled == true {
            report.next.append("The server had appendonly yes, and loads its AOF instead of an RDB: start it once with --appendonly no, then turn AOF on again with CONFIG SET appendonly yes (which rewrites the AOF from the data).")
        }
        report.next.append("Start Redis and check its keys (redis-cli INFO keyspace).")
        return report
    }

    /// fsync of the directory, so that the new name survives a crash.
    private static func syncDirectory(_ path: String) throws {
        let fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { throw LifeboatError(.io, "unable to open directory '\(path)' to sync it: \(errnoText())") }
        defer { close(fd) }
        guard fsync(fd) == 0 else { throw LifeboatError(.io, "unable to sync directory '\(path)': \(errnoText())") }
    }
}
