import Crypto
import LifeboatCore

/// One thing wrong with a stored artifact.
public struct VerificationProblem: Sendable, Equatable, CustomStringConvertible {
    /// The artifact's path (as in its record).
    public var artifact: String
    /// The entry concerned, when there is one.
    public var entry: String?
    /// What is wrong, in a sentence fragment following the artifact and entry ("SHA-256 mismatch: …").
    public var message: String

    public init(artifact: String, entry: String?, message: String) {
        self.artifact = artifact
        self.entry = entry
        self.message = message
    }

    public var description: String {
        if let entry {
            return "artifact '\(artifact)', entry '\(entry)': \(message)"
        }
        return "artifact '\(artifact)': \(message)"
    }
}

/// The message of an error, without its hint (a problem list is not the place for hints).
func problemText(_ error: any Error) -> String {
    if let error = error as? LifeboatError { return error.message }
    return String(describing: error)
}

/// Reads a whole artifact and compares it with its record: every entry's size and SHA-256,
/// entries missing or unexpected, and the stored object's size and SHA-256.
///
/// Never throws and never stops at the first problem: it reports everything it can. After an
/// error libarchive cannot recover from (damaged compression, truncation), it stops reading
/// entries, reports the recorded entries it did not reach, and still hashes the rest of the
/// stored object. The caller closes `source`. Returns no problems for an intact artifact.
public func verifyArtifact(_ record: ArtifactRecord, source: any ObjectReader) -> [VerificationProblem] {
    var problems: [VerificationProblem] = []
    func report(_ entry: String?, _ message: String) {
        problems.append(VerificationProblem(artifact: record.path, entry: entry, message: message))
    }

    var expected: [String: EntryRecord] = [:]
    for entry in record.entries {
        if expected[entry.path] != nil {
            report(entry.path, "is listed more than once in the record")
        } else {
            expected[entry.path] = entry
        }
    }

    let context = ReadContext(source: source)
    var seen: Set<String> = []
    var stoppedEarly = false
    let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 256 << 10, alignment: 16)
    defer { buffer.deallocate() }

    let reader: ArtifactReader?
    do {
        reader = try ArtifactReader(context: context, artifactPath: record.path)
    } catch {
        reader = nil
        stoppedEarly = true
        report(nil, "unreadable before the first entry: \(problemText(error))")
    }

    if let reader {
        while true {
            let header: ArchiveEntryHeader?
            do {
                header = try reader.nextEntry()
            } catch {
                stoppedEarly = true
                report(nil, "reading stopped: \(problemText(error))")
                break
            }
            guard let header else { break }
            let path = header.path
            if !seen.insert(path).inserted {
                report(path, "appears more than once in the archive")
            }
            let recorded = expected[path]
            if recorded == nil {
                report(path, "is in the archive but not in the record")
            }
            if let recorded {
                if recorded.kind != header.kind {
                    report(path, "is a \(header.kind.rawValue) in the archive but a \(recorded.kind.rawValue) in the record")
                }
                if let mode = recorded.mode, header.kind != .symlink, mode & 0o7777 != header.mode {
                    report(path, "has mode \(String(header.mode, radix: 8)) in the archive but \(String(mode, radix: 8)) in the record")
                }
                if let time = recorded.modificationTime, time != header.modificationTime {
                    report(path, "has modification time \(header.modificationTime) in the archive but \(time) in the record")
                }
                if header.kind == .symlink, let target = recorded.linkTarget, target != header.linkTarget {
                    report(path, "links to '\(header.linkTarget ?? "")' in the archive but to '\(target)' in the record")
                }
            }

            var hasher = SHA256()
            var total: Int64 = 0
            do {
                while true {
                    let n = try reader.read(into: buffer)
                    if n == 0 { break }
                    hasher.update(bufferPointer: UnsafeRawBufferPointer(rebasing: buffer[0..<n]))
                    total += Int64(n)
                }
            } catch {
                stoppedEarly = true
                report(path, "reading stopped in this entry: \(problemText(error))")
                break
            }
            guard let recorded else { continue }
            let digest = header.kind == .symlink ? sha256Hex(of: header.linkTarget ?? "") : hasher.finalize().hex
            if total != recorded.size {
                report(path, "holds \(total) bytes but the record says \(recorded.size)")
            }
            if digest != recorded.sha256 {
                report(path, "SHA-256 mismatch: the record says \(recorded.sha256), the archive holds \(digest)")
            }
        }
    }

    for entry in record.entries where !seen.contains(entry.path) {
        if stoppedEarly {
            report(entry.path, "was not reached: reading stopped at an earlier error")
        } else {
            report(entry.path, "is in the record but missing from the archive")
        }
    }

    do {
        let stored = try context.finish()
        if stored.size != record.size {
            report(nil, "the stored object is \(stored.size) bytes but the record says \(record.size)")
        }
        if stored.sha256 != record.sha256 {
            report(nil, "SHA-256 mismatch of the stored object: the record says \(record.sha256), the object holds \(stored.sha256)")
        }
    } catch {
        report(nil, "unable to read the whole stored object: \(problemText(error))")
    }
    return problems
}
