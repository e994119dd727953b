import Crypto
import LifeboatCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The size and SHA-256 of a file's content, read in 1 MiB blocks (for a delta restore, which
/// writes only the files whose content differs from the backup's).
public func sha256OfFile(atPath path: String) throws -> (size: Int64, sha256: String) {
    let fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)
    guard fd >= 0 else {
        throw LifeboatError(.io, "unable to open '\(path)' to compare it with the backup: \(String(cString: strerror(errno)))")
    }
    defer { close(fd) }
    let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 20, alignment: 16)
    defer { buffer.deallocate() }
    var hasher = SHA256()
    var size: Int64 = 0
    while true {
        let n = read(fd, buffer.baseAddress, buffer.count)
        if n < 0 {
            if errno == EINTR { continue }
            throw LifeboatError(.io, "unable to read '\(path)' to compare it with the backup: \(String(cString: strerror(errno)))")
        }
        if n == 0 { break }
        hasher.update(bufferPointer: UnsafeRawBufferPointer(rebasing: buffer[0..<n]))
        size += Int64(n)
    }
    return (size, hasher.finalize().hex)
}
