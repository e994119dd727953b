import Foundation
import LifeboatCore

/// A committed backup's manifest as read, or why it cannot be read.
public enum CommittedManifest: Sendable {
    case readable(Manifest)
    /// The manifest exists and does not read (damaged, or a format newer than this version):
    /// the backup is listed as damaged, never restored, and never deleted by prune.
    case damaged(LifeboatError)
}

extension Repository {
    /// Reads the manifest of a backup the listing shows as committed. A manifest that cannot be
    /// read is `.damaged`, not an error: one bad object never hides the others.
    public func committedManifest(policy: String, id: String) throws -> CommittedManifest {
        do {
            return .readable(try manifest(policy: policy, id: id))
        } catch let error as LifeboatError where error.code == .integrity || error.code == .usage {
            return .damaged(error)
        }
    }

    /// Deletes one backup directory in the order that leaves only safe states behind, whatever
    /// point a crash stops it at:
    ///
    /// 1. the manifest — the commit point: from then on the backup is never listed, verified
    ///    or restored, and `list --all` shows what remains as interrupted;
    /// 2. everything else under the directory but the reservation (the artifacts), then what
    ///    the run's writers left uncommitted when it was killed (`discardIncompleteWrites`:
    ///    temporary files, multipart uploads);
    /// 3. the reservation, if there is one (an interrupted run's), so that leftovers of a
    ///    deletion cut short keep naming the run they came from.
    ///
    /// Objects already gone are fine, so a deletion cut short is finished by doing it again.
    /// The caller holds the repository's exclusive lock and has decided that the backup goes
    /// (it never deletes a reservation whose owner runs). Returns the objects and bytes deleted.
    public func deleteBackup(policy: String, id: String, context: RunContext) throws -> (objects: Int, bytes: Int64) {
        let manifestKey = Self.manifestKey(policy: policy, id: id)
        let reservationKey = Self.reservationKey(policy: policy, id: id)
        let objects = try store.listAll(prefix: Self.backupDirectory(policy: policy, id: id))
        if objects.contains(where: { $0.key == manifestKey }) {
            try store.delete(keys: [manifestKey])
            context.logger.debug("manifest deleted", metadata: ["backup.id": "\(id)", "object": "\(locate(manifestKey))"])
            CrashPoint.pruneManifestDeleted.reach(context)
        }
        let data = objects.map(\.key).filter { $0 != manifestKey && $0 != reservationKey }
        if !data.isEmpty {
            try store.delete(keys: data)
            CrashPoint.pruneDataDeleted.reach(context)
        }
        try store.discardIncompleteWrites(prefix: Self.backupDirectory(policy: policy, id: id))
        if objects.contains(where: { $0.key == reservationKey }) {
            try store.delete(keys: [reservationKey])
        }
        return (objects.count, objects.reduce(0) { $0 + $1.size })
    }
}
