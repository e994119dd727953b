import CArchive
import Glibc
import Crypto
import LifeboatCore

// The one wrapper through which this module calls libarchive.
//
// libarchive reports failures as a return code plus a message kept in the handle, which the
// next call overwrites: `ArchiveHandle.call` reads it at once and turns it into a
// `LifeboatError`. Errors thrown by Swift code inside a libarchive callback (an object store
// that failed) are kept by the callback's context and rethrown unchanged by the same `call`.

/// File type bits of `archive_entry_filetype` (`AE_IF*`; the header's macros use a cast that
/// Swift does not import).
enum ArchiveFileType {
    static let mask: UInt32 = 0o170000
    static let regular: UInt32 = 0o100000
    static let directory: UInt32 = 0o040000
    static let symlink: UInt32 = 0o120000
    static let fifo: UInt32 = 0o010000
    static let characterDevice: UInt32 = 0o020000
    static let blockDevice: UInt32 = 0o060000
}

/// State shared between Swift and one libarchive callback (read or write). It keeps the first
/// error thrown inside a callback, since a C callback can only return -1 to libarchive.
class ArchiveCallbackContext {
    private(set) var firstError: (any Error)?

    /// Keeps `error` unless an earlier one is already kept (the first one is the cause).
    final func record(_ error: any Error) {
        if firstError == nil { firstError = error }
    }
}

/// Owns one `struct archive *` (a reader, a writer or a disk writer) and frees it in `deinit`.
final class ArchiveHandle {
    enum Kind {
        case read, write, writeDisk
    }

    let pointer: OpaquePointer
    let kind: Kind
    /// Context of the callbacks registered with this handle; kept alive as long as the handle,
    /// since libarchive may call them until `archive_*_free` returns.
    var context: ArchiveCallbackContext?
    /// Default hint of the errors of this handle.
    let hint: String
    /// Set once libarchive returned `ARCHIVE_FATAL`: no further operation can succeed.
    private(set) var isFatal = false

    init(kind: Kind, hint: String) throws {
        let created: OpaquePointer?
        switch kind {
        case .read: created = archive_read_new()
        case .write: created = archive_write_new()
        case .writeDisk: created = archive_write_disk_new()
        }
        guard let created else {
            throw LifeboatError(.archive, "unable to create a libarchive handle (out of memory)",
                                hint: "Free some memory on this machine and try again.")
        }
        self.pointer = created
        self.kind = kind
        self.hint = hint
    }

    /// Calls libarchive and maps a failure to an error.
    ///
    /// A negative result is a failure, except `ARCHIVE_WARN` when `acceptWarning` (for the
    /// functions returning a status; the ones returning a byte count pass `false`).
    /// - Parameter what: what was being done, naming the object ("artifact 'x': writing entry 'y'").
    @discardableResult
    func call<R: BinaryInteger>(
        _ what: @autoclosure () -> String, hint: String? = nil, acceptWarning: Bool = true,
        _ body: (OpaquePointer) -> R
    ) throws -> R {
        let result = body(pointer)
        let code = Int(result)
        if code >= 0 || (acceptWarning && code == Int(ARCHIVE_WARN)) {
            return result
        }
        // Read the message before anything else can touch the handle.
        var message = archive_error_string(pointer).map { String(cString: $0) }
            ?? "libarchive failed with code \(code)"
        // Writing to disk, libarchive says "Write failed" and keeps the reason in its errno:
        // a full disk must say so.
        let number = archive_errno(pointer)
        if kind == .writeDisk, [ENOSPC, EDQUOT, EFBIG, EIO, EROFS].contains(number) {
            let reason = String(cString: strerror(number))
            if !message.contains(reason) { message += ": \(reason)" }
        }
        if code == Int(ARCHIVE_FATAL) { isFatal = true }
        if let callbackError = context?.firstError {
            throw callbackError
        }
        throw LifeboatError(.archive, "\(what()): \(message)", hint: hint ?? self.hint)
    }

    /// Marks the handle as failed: closing or freeing it then neither finishes the current
    /// entry nor flushes anything.
    func fail() {
        // Not through `call`: `archive_write_fail` cannot fail (it returns the previous state).
        if kind != .read { _ = archive_write_fail(pointer) }
        isFatal = true
    }

    deinit {
        // The status of `archive_*_free` is ignored: nothing can be done about it here, and the
        // callers that care about the final status call `archive_write_close` first.
        switch kind {
        case .read: _ = archive_read_free(pointer)
        case .write, .writeDisk: _ = archive_write_free(pointer)
        }
    }
}

/// Owns one `struct archive_entry *`.
final class ArchiveEntryHandle {
    let pointer: OpaquePointer

    init() throws {
        guard let created = archive_entry_new() else {
            throw LifeboatError(.archive, "unable to create a libarchive entry (out of memory)",
                                hint: "Free some memory on this machine and try again.")
        }
        pointer = created
    }

    deinit { archive_entry_free(pointer) }
}

extension Digest {
    /// Lowercase hexadecimal.
    var hex: String {
        let digits = Array("0123456789abcdef".utf8)
        var result: [UInt8] = []
        result.reserveCapacity(Self.byteCount * 2)
        for byte in self {
            result.append(digits[Int(byte >> 4)])
            result.append(digits[Int(byte & 0x0f)])
        }
        return String(decoding: result, as: UTF8.self)
    }
}

/// SHA-256 of no bytes: the digest recorded for directories, which have no data.
let emptySHA256 = SHA256.hash(data: [UInt8]()).hex

/// SHA-256 of a link target's bytes (the digest recorded for symbolic and hard links).
func sha256Hex(of name: EntryPath) -> String {
    SHA256.hash(data: name.bytes).hex
}

/// 64 KiB of zeros: the holes of sparse files, hashed and written without being read.
let zeroBlock = [UInt8](repeating: 0, count: 64 << 10)

extension SHA256 {
    /// Hashes `count` zero bytes.
    mutating func updateWithZeros(_ count: Int64) {
        var remaining = count
        zeroBlock.withUnsafeBytes { zeros in
            while remaining > 0 {
                let n = Int(min(Int64(zeros.count), remaining))
                update(bufferPointer: UnsafeRawBufferPointer(rebasing: zeros[0..<n]))
                remaining -= Int64(n)
            }
        }
    }
}
