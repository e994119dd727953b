import Foundation
import LifeboatCore
import LifeboatEngine
import Testing
import TestSupport

/// Flips one byte in the middle of a file.
func flipByte(_ path: String, at fraction: Double = 0.5) throws {
    let handle = try FileHandle(forUpdating: URL(fileURLWithPath: path))
    defer { try? handle.close() }  // closing a file we only patched; a failure has nothing to lose
    let size = try handle.seekToEnd()
    let offset = UInt64(Double(size) * fraction)
    try handle.seek(toOffset: offset)
    let byte = try #require(try handle.read(upToCount: 1)).first ?? 0
    try handle.seek(toOffset: offset)
    try handle.write(contentsOf: [byte ^ 0x5A])
}

func truncate(_ path: String, to fraction: Double) throws {
    let handle = try FileHandle(forUpdating: URL(fileURLWithPath: path))
    defer { try? handle.close() }  // as above
    let size = try handle.seekToEnd()
    try handle.truncate(atOffset: UInt64(Double(size) * fraction))
}

@Suite(.timeLimit(.minutes(10)))
struct Verification {
    @Test func verifyDetectsAFlippedByteATruncationAndADeletionInAPostgresBackup() async throws {
        try await offThePool {
            let server = try PostgresServer.start()
            defer { server.stop() }
            let dir = try TemporaryDirectory()
            defer { dir.remove() }
            try seedPlatformDatabases(server)
            try postgresConfig(dir, databases: ["mcphub"])
            let env = ["PG_CONNINFO": server.conninfo()]
            let backup = try LifeboatCLI.run(["backup", "pg", "--json"], config: dir.path, environment: env)
            #expect(backup.status == 0, "\(backup.stderr)")
            let id = try #require((try JSONSerialization.jsonObject(with: Data(backup.stdout.utf8)) as? [String: Any])?["id"] as? String)

            let fresh = try LifeboatCLI.run(["verify", "pg", "latest", "--json"], config: dir.path, environment: env)
            #expect(fresh.status == 0, "\(fresh.stderr)")
            #expect(fresh.stdout.contains("\"ok\" : true"))

            let artifact = dir.subpath("repo/pg/backups/\(id)/data/0001.tar.zst")
            let pristine = try Data(contentsOf: URL(fileURLWithPath: artifact))

            try flipByte(artifact)
            let flipped = try LifeboatCLI.run(["verify", "pg", id], config: dir.path, environment: env)
            #expect(flipped.status == 1)
            #expect(flipped.stderr.contains("data/0001.tar.zst entry database.dump.0000"), "\(flipped.stderr)")
            #expect(flipped.stderr.contains("SHA-256"))

            try pristine.write(to: URL(fileURLWithPath: artifact))
            #expect(try LifeboatCLI.run(["verify", "pg", id], config: dir.path, environment: env).status == 0)

            try truncate(artifact, to: 0.6)
            let truncated = try LifeboatCLI.run(["verify", "pg", id], config: dir.path, environment: env)
            #expect(truncated.status == 1)
            #expect(truncated.stderr.contains("data/0001.tar.zst entry database.dump.0000"), "\(truncated.stderr)")

            try FileManager.default.removeItem(atPath: artifact)
            let deleted = try LifeboatCLI.run(["verify", "pg", id], config: dir.path, environment: env)
            #expect(deleted.status == 1)
            #expect(deleted.stderr.contains("data/0001.tar.zst: the artifact is missing from the repository"), "\(deleted.stderr)")

            // A damaged backup is never restored: the restore stops before feeding pg_restore.
            try pristine.write(to: URL(fileURLWithPath: artifact))
            try flipByte(artifact)
            _ = try server.psql("drop database mcphub")
            let restore = try LifeboatCLI.run(["restore", "pg", id, "--to", server.conninfo(), "--no-globals"], config: dir.path, environment: env)
            #expect(restore.status == 1)
            #expect(restore.stderr.contains("data/0001.tar.zst"))
        }
    }

    @Test func aFlippedByteInAnUncompressedArtifactNamesTheEntryWhoseChecksumDiffers() async throws {
        try await offThePool {
            let dir = try TemporaryDirectory()
            defer { dir.remove() }
            try dir.write("src/alpha.txt", String(repeating: "alpha ", count: 20_000))
            try dir.write("src/beta/gamma.txt", String(repeating: "gamma ", count: 20_000))
            try dir.write("policies/etc.yaml", "policy: etc\nsource: { files: { path: src } }\ncompression: { algorithm: none }\n")
            let backup = try LifeboatCLI.run(["backup", "etc", "--json"], config: dir.path)
            #expect(backup.status == 0, "\(backup.stderr)")
            let id = try #require((try JSONSerialization.jsonObject(with: Data(backup.stdout.utf8)) as? [String: Any])?["id"] as? String)
            let artifact = dir.subpath(".lifeboat/repository/etc/backups/\(id)/data/0000.tar")
            // alpha.txt's data sits in the first half of the archive.
            try flipByte(artifact, at: 0.25)
            let result = try LifeboatCLI.run(["verify", "etc", "latest"], config: dir.path)
            #expect(result.status == 1)
            #expect(result.stderr.contains("data/0000.tar entry alpha.txt: SHA-256"), "\(result.stderr)")
        }
    }
}
