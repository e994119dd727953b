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
            do {
                manifest = try repository.manifest(policy: policy, id: listing.id)
            } catch let error as LifeboatError where error.code == .integrity || error.code == .usage {
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
        let prefix = WALArchiveLayout.prefix(policy: policy)
        let record: WALArchiveRecord?
        do {
            record = try JSON.decode(WALArchiveRecord.self, from: Data(try repository.store.readAll(key: WALArchiveLayout.recordKey(policy: policy))))
        } catch let error as LifeboatError where error.code == .notFound {
            record = nil
        }
        let segmentSize = record?.segmentSize ?? backups.last?.record.segmentSize ?? WALSegment.defaultSize
        var wal = WALInventory(segmentSize: segmentSize)
        var historyKeys: [(UInt32, String)] = []
        try repository.store.forEachObject(prefix: prefix) { object in
            let name = object.key.split(separator: "/").last.map(String.init) ?? ""
            guard name.hasSuffix(WALArchiveLayout.suffix),
                  let file = WALFileName(String(name.dropLast(WALArchiveLayout.suffix.count)), segmentSize: segmentSize),
                  WALArchiveLayout.key(policy: policy, file: file) == object.key
            else { return true }
            switch file {
            case .segment(let segment): wal.add(segment, archivedAt: object.modified)
            case .history(let timeline): historyKeys.append((timeline, object.key))
            case .partial, .backupHistory: break
            }
            return true
        }
        for (timeline, key) in historyKeys {
            let text = String(decoding: try readArchivedWALFile(key: key, repository: repository), as: UTF8.self)
            guard let history = TimelineHistory(timeline: timeline, text: text) else {
                throw LifeboatError(.integrity, "the archived history file of timeline \(timeline) of policy '\(policy)' (\(repository.locate(key))) cannot be read as a timeline history",
                                    hint: "Run 'lifeboat verify \(policy)'; push the file again from the server's pg_wal if it still has it.")
            }
            wal.histories[timeline] = history
        }
        return PhysicalRecoveryInventory(backups: backups, manifests: manifests, wal: wal)
    }
}

/// The file an archived WAL object holds (its first entry), checked against the SHA-256 the
/// object carries in its second entry.
func readArchivedWALFile(key: String, repository: Repository) throws -> [UInt8] {
    let source = try repository.store.openReader(key: key)
    defer { source.close() }
    let reader = try ArtifactReader(source: source, artifactPath: repository.locate(key))
    var entries: [(String, [UInt8])] = []
    while entries.count < 2, try reader.nextEntry() != nil {
        var bytes: [UInt8] = []
        _ = try reader.readLogicalContent { block, _ in bytes += block }
        entries.append(("", bytes))
    }
    guard entries.count == 2, let recorded = String(decoding: entries[1].1, as: UTF8.self).split(separator: " ").first,
          recorded == SigV4.sha256Hex(entries[0].1)
    else {
        throw LifeboatError(.integrity, "archived WAL file \(repository.locate(key)) is damaged: its content does not match its SHA-256",
                            hint: "Push the file again from the server's pg_wal if it still has it, and take a new base backup.")
    }
    return entries[0].1
}
