import Foundation

/// Where a policy's archived WAL lives in its repository:
///
/// ```
/// <policy>/wal/archive.json                             WALArchiveRecord: the cluster it belongs to
/// <policy>/wal/<TTTTTTTTLLLLLLLL>/<segment>.tar.zst      segments, partial segments and backup
///                                                        history files, grouped 4 GiB of WAL a folder
/// <policy>/wal/history/<TTTTTTTT>.history.tar.zst        timeline history files
/// ```
///
/// Every key is computed from the file's name alone, so `wal-push` and `wal-fetch` touch one
/// object each and never list. Each object is a tar archive (zstd) holding the file as its
/// first entry and `<name>.sha256` (`sha256sum` format: `<hex>  <name>`) as its second.
public enum WALArchiveLayout {
    public static func prefix(policy: String) -> String { "\(policy)/wal/" }

    public static func recordKey(policy: String) -> String { prefix(policy: policy) + "archive.json" }

    public static let suffix = ".tar.zst"

    public static func key(policy: String, file: WALFileName) -> String {
        switch file {
        case .segment(let segment), .partial(let segment), .backupHistory(let segment, _):
            return prefix(policy: policy) + segment.group + "/" + file.description + suffix
        case .history:
            return prefix(policy: policy) + "history/" + file.description + suffix
        }
    }

    /// The name of the checksum entry that follows the file in its archive.
    public static func checksumEntryName(for file: WALFileName) -> String { file.description + ".sha256" }
}

/// `<policy>/wal/archive.json`: which cluster a policy's WAL archive belongs to. Written once,
/// by the first `wal-push` (a conditional create), and checked by every push after it.
public struct WALArchiveRecord: Codable, Equatable, Sendable {
    public var format: Int
    /// `pg_control`'s system identifier, in decimal.
    public var systemIdentifier: String
    public var segmentSize: UInt64
    public var created: Date

    public static let currentFormat = 1

    public init(systemIdentifier: String, segmentSize: UInt64, created: Date) {
        format = Self.currentFormat
        self.systemIdentifier = systemIdentifier
        self.segmentSize = segmentSize
        self.created = created
    }
}
