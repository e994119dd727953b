import Foundation
import LifeboatArchive
import LifeboatCore

/// What a policy's repository holds for point-in-time recovery: its committed base backups and
/// its archived WAL (segments with their archive times, timeline histories). Read for
/// `restore`, `list` and `verify` — never on the `wal-push` hot path.
struct PhysicalRecoveryInventory {
    var backups: [PhysicalBackupInfo]
    var manifests: [String: Manifest]
    var wal: WALInventory

    static func load(repository: Repository, policy: String, context: RunContext) throws -> PhysicalRecoveryInventory {
        var backups: [PhysicalBackupInfo] = []
        var manifests: [String: Manifest] = [:]
        for listing in try repository.listBackups(policy: policy) where listing.committed {
            try context.cancellation.checkCancelled()
            let manifest: Manifest
            switch try repository.committedManifest(policy: policy, id: listing.id) {
            case .readable(let readable):
                manifest = readable
            case .damaged(let error):
                context.logger.warning("a base backup's manifest cannot be read; it is left out of recovery planning",
                                       metadata: ["backup.id": "\(listing.id)", "error": "\(error.message)"])
                continue
            }
            guard manifest.source.kind == "postgres",
                  let record = try? manifest.source.details(as: PostgresRecord.self).physical
            else { continue }
            backups.append(PhysicalBackupInfo(id: manifest.id, record: record))
            manifests[manifest.id] = manifest
        }
        let archive = WALArchive(repository: repository, policy: policy, context: context)
        let segmentSize = try archive.readRecord()?.segmentSize ?? backups.last?.record.segmentSize ?? WALSegment.defaultSize
        var wal = WALInventory(segmentSize: segmentSize)
        var historyFiles: [UInt32] = []
        try archive.forEachArchived { file, object in
            switch file {
            case .segment(let segment): wal.add(segment, archivedAt: object.modified)
            case .history(let timeline): historyFiles.append(timeline)
            case .partial, .backupHistory: break
            }
            return true
        }
        for timeline in historyFiles {
            try context.cancellation.checkCancelled()
            var bytes: [UInt8] = []
            _ = try archive.read(.history(timeline: timeline)) { bytes += $0 }
            guard let history = TimelineHistory(timeline: timeline, text: String(decoding: bytes, as: UTF8.self)) else {
                throw LifeboatError(.integrity, "the archived history file of timeline \(timeline) of policy '\(policy)' cannot be read as a timeline history",
                                    hint: "Run 'lifeboat verify \(policy)'; push the file again from the server's pg_wal if it still has it.")
            }
            wal.histories[timeline] = history
        }
        return PhysicalRecoveryInventory(backups: backups, manifests: manifests, wal: wal)
    }
}
