import Crypto
import Foundation
import LifeboatCore

/// Fills the chunks of a stream of unknown length on a thread of its own, and hashes each
/// chunk's bytes there as they arrive (while they are still in the cache), while the caller's
/// thread writes the previous chunk. At most two chunk buffers exist: the one being written
/// and the one being filled.
///
/// It is `@unchecked Sendable` because it is shared with the producer thread: every mutable
/// property is read and written only while `condition` is locked, and a buffer is touched by
/// one thread at a time (the producer between `takeFree` and `post`, the consumer between
/// `takeFilled` and `recycle`), the handoff happening under the lock.
final class StreamChunker: @unchecked Sendable {
    /// A filled chunk: `count` bytes of `buffer`. `isLast` when the stream ended (or failed)
    /// while filling it.
    struct Filled {
        var buffer: UnsafeMutableRawBufferPointer
        var count: Int
        /// SHA-256 (lowercase hex) of the chunk's `count` bytes.
        var sha256: String
        var isLast: Bool
        var error: (any Error)?
    }

    let name: String
    let chunkSize: Int
    private let condition = NSCondition()
    private var allocated: [UnsafeMutableRawBufferPointer] = []
    private var free: [UnsafeMutableRawBufferPointer] = []
    private var filled: [Filled] = []
    private var cancelled = false
    private var producerRunning = false
    private static let maximumBuffers = 2

    init(name: String, chunkSize: Int) {
        self.name = name
        self.chunkSize = chunkSize
    }

    deinit {
        for buffer in allocated { buffer.deallocate() }
    }

    /// Starts the producer thread, which calls `read` until the end of the stream, an error,
    /// or `cancel()`.
    func start(read: @escaping @Sendable (UnsafeMutableRawBufferPointer) throws -> Int) {
        condition.lock()
        producerRunning = true
        condition.unlock()
        let thread = Thread { [self] in
            self.produce(read: read)
        }
        thread.name = "lifeboat-stream-chunker"
        thread.start()
    }

    private func produce(read: (UnsafeMutableRawBufferPointer) throws -> Int) {
        defer {
            condition.lock()
            producerRunning = false
            condition.broadcast()
            condition.unlock()
        }
        while let buffer = takeFree() {
            var count = 0
            var hasher = SHA256()
            var isLast = false
            var failure: (any Error)?
            while count < chunkSize {
                if isCancelled { return }
                do {
                    let space = UnsafeMutableRawBufferPointer(rebasing: buffer[count..<chunkSize])
                    let n = try read(space)
                    guard n >= 0, n <= space.count else {
                        throw LifeboatError(
                            .internalError,
                            "stream '\(name)': read returned \(n) for a buffer of \(space.count) bytes",
                            hint: "Report this as a bug in Lifeboat.")
                    }
                    if n == 0 {
                        isLast = true
                        break
                    }
                    hasher.update(bufferPointer: UnsafeRawBufferPointer(rebasing: space[0..<n]))
                    count += n
                } catch {
                    failure = error
                    isLast = true
                    break
                }
            }
            post(Filled(buffer: buffer, count: count, sha256: hasher.finalize().hex, isLast: isLast, error: failure))
            if isLast { return }
        }
    }

    private var isCancelled: Bool {
        condition.lock()
        defer { condition.unlock() }
        return cancelled
    }

    /// A free buffer for the producer (allocated on first need), or nil once cancelled.
    private func takeFree() -> UnsafeMutableRawBufferPointer? {
        condition.lock()
        defer { condition.unlock() }
        while true {
            if cancelled { return nil }
            if let buffer = free.popLast() { return buffer }
            if allocated.count < Self.maximumBuffers {
                let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: chunkSize, alignment: 16)
                allocated.append(buffer)
                return buffer
            }
            condition.wait()
        }
    }

    private func post(_ chunk: Filled) {
        condition.lock()
        filled.append(chunk)
        condition.broadcast()
        condition.unlock()
    }

    /// The next filled chunk, in stream order; waits for the producer.
    func takeFilled() -> Filled {
        condition.lock()
        defer { condition.unlock() }
        while filled.isEmpty {
            condition.wait()
        }
        return filled.removeFirst()
    }

    /// Gives a buffer back to the producer once its chunk is written.
    func recycle(_ buffer: UnsafeMutableRawBufferPointer) {
        condition.lock()
        free.append(buffer)
        condition.broadcast()
        condition.unlock()
    }

    /// Stops the producer and waits until its thread is done with `read` and the buffers.
    /// A `read` in progress is not interrupted: this returns when it does.
    func cancelAndWait() {
        condition.lock()
        cancelled = true
        condition.broadcast()
        while producerRunning {
            condition.wait()
        }
        condition.unlock()
    }
}
