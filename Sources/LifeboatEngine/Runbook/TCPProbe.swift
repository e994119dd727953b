import Foundation
import Glibc
import LifeboatCore

/// Whether a TCP connection to `host:port` can be made within a time: a `tcp` health check.
/// Every address the name resolves to is tried in turn (non-blocking `connect`, then `poll`
/// in slices of 100 ms, so that a cancellation ends the wait); the connection is closed at once.
enum TCPProbe {
    static func connect(host: String, port: Int, timeout: Double, cancellation: Cancellation) -> CheckOutcome {
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        hints.ai_family = AF_UNSPEC
        var results: UnsafeMutablePointer<addrinfo>?
        let status = getaddrinfo(host, String(port), &hints, &results)
        guard status == 0 else {
            return .failed("cannot resolve '\(host)': \(String(cString: gai_strerror(status)))")
        }
        defer { freeaddrinfo(results) }
        let deadline = Date().addingTimeInterval(timeout)
        var failures: [String] = []
        var entry = results
        while let current = entry {
            entry = current.pointee.ai_next
            let fd = socket(current.pointee.ai_family, current.pointee.ai_socktype | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue),
                            current.pointee.ai_protocol)
            guard fd >= 0 else {
                failures.append(errnoText())
                continue
            }
            defer { close(fd) }
            if Glibc.connect(fd, current.pointee.ai_addr, current.pointee.ai_addrlen) == 0 {
                return .passed("connected to \(host):\(port)")
            }
            guard errno == EINPROGRESS else {
                failures.append(errnoText())
                continue
            }
            var result: String?
            while result == nil {
                if cancellation.isCancelled {
                    return .failed("cancelled while connecting to \(host):\(port)")
                }
                let left = deadline.timeIntervalSinceNow
                if left <= 0 {
                    result = "no answer within \(String(format: "%.0f", timeout)) s"
                    break
                }
                var pollfd = Glibc.pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
                let ready = poll(&pollfd, 1, Int32(min(100, max(1, left * 1000))))
                if ready < 0 && errno != EINTR {
                    result = errnoText()
                } else if ready > 0 {
                    var error: Int32 = 0
                    var length = socklen_t(MemoryLayout<Int32>.size)
                    getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &length)
                    if error == 0 { return .passed("connected to \(host):\(port)") }
                    result = String(cString: strerror(error))
                }
            }
            failures.append(result ?? "failed")
        }
        let reasons = Array(Set(failures)).sorted().joined(separator: "; ")
        return .failed("cannot connect to \(host):\(port): \(reasons.isEmpty ? "no address" : reasons)")
    }

    private static func errnoText() -> String { String(cString: strerror(errno)) }
}
