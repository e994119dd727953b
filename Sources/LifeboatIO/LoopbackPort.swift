import Glibc
import LifeboatCore

/// A TCP port on 127.0.0.1 that nothing listened on a moment ago (bind to port 0, read the
/// port the kernel chose, close). Another process may take it in between: retry on failure.
public enum LoopbackPort {
    public static func free() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else {
            throw LifeboatError(.io, "unable to create a socket to find a free port: \(errnoText())")
        }
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = 0
        address.sin_addr.s_addr = in_addr_t(0x7f00_0001).bigEndian
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard bound == 0 else {
            throw LifeboatError(.io, "unable to bind a socket to 127.0.0.1 to find a free port: \(errnoText())")
        }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let named = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        guard named == 0 else {
            throw LifeboatError(.io, "unable to read the port of a socket bound to 127.0.0.1: \(errnoText())")
        }
        return Int(UInt16(bigEndian: address.sin_port))
    }
}
