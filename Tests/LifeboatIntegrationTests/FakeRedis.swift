import Foundation
import Glibc
import LifeboatCore
import Synchronization

/// A TCP server on 127.0.0.1 that plays just enough of a Redis 7 master for a backup — INFO,
/// CONFIG GET, BGSAVE, REPLCONF, SYNC — serving an RDB the test gives it: damaged, cut short,
/// or stalled half-way, which a real server never does on purpose.
final class FakeRedis: Sendable {
    /// What SYNC sends.
    enum Transfer: Sendable {
        /// `$<length>` and the whole file.
        case whole
        /// `$<length>`, then the first `count` bytes, then the connection is closed.
        case cut(Int)
        /// `$<length>`, then the first `count` bytes, then nothing (the connection stays open).
        case stall(Int)
    }

    let port: Int
    private let listener: Int32
    private let rdb: [UInt8]
    /// `CONFIG GET dir`; nil answers as a server with CONFIG renamed away.
    private let directory: String?
    private let transfer: Transfer
    private let saves = Mutex(0)
    private let connections = Mutex<[Int32]>([])

    init(rdb: [UInt8], directory: String? = nil, transfer: Transfer = .whole) throws {
        self.rdb = rdb
        self.directory = directory
        self.transfer = transfer
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw TestFailure("socket: \(String(cString: strerror(errno)))") }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = in_addr_t(0x7f00_0001).bigEndian
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) == 0 && listen(fd, 16) == 0 && getsockname(fd, $0, &length) == 0 }
        }
        guard bound else {
            close(fd)
            throw TestFailure("bind/listen on 127.0.0.1: \(String(cString: strerror(errno)))")
        }
        listener = fd
        port = Int(UInt16(bigEndian: address.sin_port))
        let thread = Thread { [self] in acceptLoop() }
        thread.name = "fake-redis-accept"
        thread.start()
    }

    /// Stops listening and closes every connection.
    func stop() {
        shutdown(listener, Int32(SHUT_RDWR))
        for fd in connections.withLock({ $0 }) { shutdown(fd, Int32(SHUT_RDWR)) }
    }

    private func acceptLoop() {
        while true {
            let fd = accept(listener, nil, nil)
            if fd < 0 {
                if errno == EINTR { continue }
                close(listener)
                return
            }
            connections.withLock { $0.append(fd) }
            let thread = Thread { [self] in serve(fd) }
            thread.name = "fake-redis-connection"
            thread.start()
        }
    }

    private func serve(_ fd: Int32) {
        defer { close(fd) }
        var received: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            while let decoded = try? RESP.decode(received) {
                received.removeFirst(decoded.count)
                guard case .array(let items?) = decoded.value else { return }
                let command = items.compactMap(\.text)
                guard answer(command, on: fd) else { return }
            }
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n <= 0 { return }
            received += buffer[0..<n]
        }
    }

    /// Answers one command; false ends the connection.
    private func answer(_ command: [String], on fd: Int32) -> Bool {
        func bulk(_ text: String) -> [UInt8] { Array("$\(text.utf8.count)\r\n\(text)\r\n".utf8) }
        let name = command.map { $0.uppercased() }
        switch (name.first ?? "", name.dropFirst().first ?? "") {
        case ("INFO", "SERVER"):
            return send(fd, bulk("# Server\r\nredis_version:7.0.15\r\n"))
        case ("INFO", _):
            let saves = saves.withLock { $0 }
            return send(fd, bulk("# Persistence\r\nrdb_bgsave_in_progress:0\r\nrdb_last_save_time:\(Int(Date().timeIntervalSince1970))\r\nrdb_last_bgsave_status:ok\r\nrdb_saves:\(saves)\r\naof_enabled:0\r\n"))
        case ("CONFIG", _):
            guard let directory else { return send(fd, Array("-ERR unknown command 'CONFIG', with args beginning with: 'GET' \r\n".utf8)) }
            let value = command.count > 2 && command[2] == "dir" ? directory : "dump.rdb"
            return send(fd, Array("*2\r\n".utf8) + bulk(command.count > 2 ? command[2] : "") + bulk(value))
        case ("BGSAVE", _):
            saves.withLock { $0 += 1 }
            return send(fd, Array("+Background saving started\r\n".utf8))
        case ("REPLCONF", _):
            return send(fd, Array("+OK\r\n".utf8))
        case ("SYNC", _):
            guard send(fd, Array("\n\n$\(rdb.count)\r\n".utf8)) else { return false }
            switch transfer {
            case .whole:
                return send(fd, rdb)
            case .cut(let count):
                _ = send(fd, Array(rdb.prefix(count)))
                return false
            case .stall(let count):
                _ = send(fd, Array(rdb.prefix(count)))
                var byte: UInt8 = 0
                _ = recv(fd, &byte, 1, 0)  // until the client or stop() closes it
                return false
            }
        default:
            return send(fd, Array("-ERR unknown command '\(command.first ?? "")'\r\n".utf8))
        }
    }

    private func send(_ fd: Int32, _ bytes: [UInt8]) -> Bool {
        var offset = 0
        while offset < bytes.count {
            let n = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress! + offset, $0.count - offset, Int32(MSG_NOSIGNAL)) }
            if n <= 0 { return false }
            offset += n
        }
        return true
    }
}

struct TestFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
