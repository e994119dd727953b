import CArchive
import Crypto
import Foundation
import LifeboatArchive
import LifeboatCore
import Testing

/// One entry of an archive crafted with libarchive directly (as a hostile archive would be),
/// bypassing the checks of `ArtifactWriter`.
private struct CraftedEntry {
    var path: String
    /// `AE_IFREG` or `AE_IFDIR` (the header's macros use a cast Swift does not import).
    var type: UInt32 = 0o100000
    var hardlink: String?
    var data: [UInt8] = []
}

/// A plain (uncompressed) pax tar holding `entries`, and a record that lists every one of
/// them, so that only the extraction's own checks can refuse them.
private func craftArtifact(_ entries: [CraftedEntry]) throws -> BuiltArtifact {
    guard let archive = archive_write_new() else { throw TestFailure("archive_write_new") }
    defer { archive_write_free(archive) }
    let capacity = 1 << 20
    let buffer = UnsafeMutableRawPointer.allocate(byteCount: capacity, alignment: 16)
    defer { buffer.deallocate() }
    var used = 0
    guard archive_write_set_format_pax_restricted(archive) == ARCHIVE_OK,
          archive_write_open_memory(archive, buffer, capacity, &used) == ARCHIVE_OK else {
        throw TestFailure("opening the crafted archive: \(String(cString: archive_error_string(archive)))")
    }
    var records: [EntryRecord] = []
    for crafted in entries {
        guard let entry = archive_entry_new() else { throw TestFailure("archive_entry_new") }
        defer { archive_entry_free(entry) }
        archive_entry_copy_pathname(entry, crafted.path)
        archive_entry_set_filetype(entry, crafted.type)
        archive_entry_set_perm(entry, 0o644)
        archive_entry_set_size(entry, la_int64_t(crafted.data.count))
        if let hardlink = crafted.hardlink { archive_entry_copy_hardlink(entry, hardlink) }
        guard archive_write_header(archive, entry) >= ARCHIVE_WARN,
              crafted.data.isEmpty || archive_write_data(archive, crafted.data, crafted.data.count) == crafted.data.count else {
            throw TestFailure("writing crafted entry '\(crafted.path)': \(String(cString: archive_error_string(archive)))")
        }
        let kind: EntryRecord.Kind = crafted.hardlink != nil ? .hardlink : crafted.type == 0o040000 ? .directory : .file
        let digest = SHA256.hash(data: crafted.hardlink.map { Array($0.utf8) } ?? crafted.data)
        records.append(EntryRecord(path: crafted.path, kind: kind, size: Int64(crafted.data.count),
                                   sha256: digest.map { String(format: "%02x", $0) }.joined(),
                                   linkTarget: crafted.hardlink))
    }
    guard archive_write_close(archive) == ARCHIVE_OK else { throw TestFailure("closing the crafted archive") }
    let bytes = [UInt8](UnsafeRawBufferPointer(start: buffer, count: used))
    return BuiltArtifact(bytes: bytes, record: ArtifactRecord(
        path: "data/0000.tar", role: "files", size: Int64(bytes.count), sha256: "00", compression: .none,
        entries: records))
}

@Suite struct HardLinkSafety {
    enum Target: String, CaseIterable, Sendable {
        case parent = "../outside.txt"
        case parentThroughASubdirectory = "sub/../../outside.txt"
        case absolute = "ABSOLUTE"
        case notExtractedYet = "later.txt"
        case aDirectory = "sub"
        case notInTheArchive = "ghost.txt"
    }

    @Test(arguments: Target.allCases)
    func hostileHardLinksAreRefused(target: Target) throws {
        let temporary = try TemporaryDirectory()
        defer { temporary.remove() }
        // Every case that leaves the restore directory aims at the same file beside it.
        let outside = temporary.sub("outside.txt")
        #expect(FileManager.default.createFile(atPath: outside, contents: Data("precious".utf8)))
        let linkTarget = target == .absolute ? outside : target.rawValue
        let artifact = try craftArtifact([
            CraftedEntry(path: "sub", type: 0o040000),
            CraftedEntry(path: "inside.txt", data: Array("ok".utf8)),
            CraftedEntry(path: "evil", hardlink: linkTarget),
            CraftedEntry(path: "later.txt", data: Array("later".utf8)),
        ])
        let restore = temporary.sub("restore")
        try FileManager.default.createDirectory(atPath: restore, withIntermediateDirectories: false)

        let error = try #require(throws: LifeboatError.self) {
            try extractArtifact(artifact.record, source: artifact.reader(), to: restore)
        }
        #expect(error.code == .integrity)
        #expect(error.message.contains("refusing to extract hard link 'evil' to '\(linkTarget)'"))
        #expect(error.message.contains(artifact.record.path))
        #expect(!FileManager.default.fileExists(atPath: restore + "/evil"))
        #expect(try fileStatus(outside).st_nlink == 1)
        #expect(try fileContents(bytes: Array(outside.utf8)) == Array("precious".utf8))
        // Verification says so too.
        #expect(verifyArtifact(artifact.record, source: artifact.reader()).contains {
            $0.entry == "evil" && $0.message.contains("is a hard link to '\(linkTarget)', which is not a file earlier in the archive")
        })
    }
}
