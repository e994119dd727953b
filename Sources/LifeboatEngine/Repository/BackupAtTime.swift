import Foundation
import LifeboatCore

extension Repository {
    /// The newest committed backup of `policy` that started at or before `time` (`restore
    /// --at`): the state of the source as of then. Backup ids begin with their start time, so
    /// only the manifests of candidates are read.
    public func resolve(policy: String, at time: Date, warn: (String) -> Void = { _ in }) throws -> Manifest {
        let committed = try listBackups(policy: policy).filter(\.committed)
        for listing in committed.reversed() {
            // The id's time is the start, to the second (rounded down).
            if let started = BackupID.startTime(of: listing.id), started > time { continue }
            do {
                let manifest = try manifest(policy: policy, id: listing.id)
                if manifest.startedAt <= time { return manifest }
            } catch let error as LifeboatError where error.code == .integrity {
                warn("skipping backup \(listing.id): \(error.message)")
            }
        }
        let oldest = committed.first.map { " (the oldest is \($0.id))" } ?? ""
        throw LifeboatError(.notFound, "policy '\(policy)' has no committed backup started at or before \(RecoveryTarget.format(time)) in repository '\(name)'\(oldest)",
                            hint: "Give a later --at, or run 'lifeboat list \(policy)' to see the backups.")
    }
}

extension BackupID {
    /// The start time an id names (to the second), or nil for text that is not an id.
    public static func startTime(of id: String) -> Date? {
        guard isValid(id) else { return nil }
        let digits = Array(id.utf8.prefix(15))
        func number(_ range: Range<Int>) -> Int { Int(String(decoding: digits[range], as: UTF8.self)) ?? 0 }
        var components = DateComponents()
        components.year = number(0..<4)
        components.month = number(4..<6)
        components.day = number(6..<8)
        components.hour = number(9..<11)
        components.minute = number(11..<13)
        components.second = number(13..<15)
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = .gmt
        return calendar.date(from: components)
    }
}
