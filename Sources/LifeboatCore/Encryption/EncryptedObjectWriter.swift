import Foundation

/// Writes one encrypted object: the header (written when the store opened it), then the
/// chunks, sealed a batch at a time; `commit` seals what is left, the final chunk last.
///
/// The caller's thread only copies its bytes into a batch. The first full batch starts a
/// thread of its own for the object (`SealingThread`), which seals each batch and writes it
/// to the store while the caller fills the next: sealing and the store's write then cost the
/// backup's own thread — which reads, tars, hashes and feeds the compressor — nothing but
/// that copy. Two batch buffers take turns, the one being filled and the one being sealed
/// (and one buffer of sealed bytes). An object smaller than a batch is sealed on the caller's thread at `commit`, with
/// no thread started (mirror blobs, manifests, WAL segments of small clusters).
final class EncryptedObjectWriter: ObjectWriter {
    /// 1 MiB: a write per 64 KiB chunk cost a backup some 5% in system calls against a plain
    /// repository's writes; more than this saves nothing measurable.
    static let defaultBatchSize = 1 << 20

    let output: any ObjectWriter
    /// Whole chunks: a full batch never holds the final chunk.
    let batchSize: Int
    private var sealer: ChunkSealer?
    private var batch: [UInt8] = []
    private var thread: SealingThread?

    init(output: any ObjectWriter, sealer: ChunkSealer, batchSize: Int) {
        self.output = output
        self.sealer = sealer
        self.batchSize = max(1, batchSize / sealer.chunkSize) * sealer.chunkSize
    }

    var key: String { output.key }

    func write(_ bytes: UnsafeRawBufferPointer) throws {
        var rest = bytes[...]
        while !rest.isEmpty {
            if batch.capacity < batchSize { batch.reserveCapacity(batchSize) }
            let n = min(rest.count, batchSize - batch.count)
            batch.append(contentsOf: UnsafeRawBufferPointer(rebasing: rest.prefix(n)))
            rest = rest.dropFirst(n)
            if batch.count == batchSize { try handOff() }
        }
    }

    /// Gives the full batch to the sealing thread (started for the first one) and takes an
    /// empty buffer back; waits while the thread still seals the batch before.
    private func handOff() throws {
        if thread == nil {
            guard let sealer else { throw usedAfterEnd() }
            thread = SealingThread(output: output, sealer: sealer, name: "lifeboat-seal")
            self.sealer = nil  // the thread's until it ends
        }
        batch = try thread!.submit(batch)
    }

    private func usedAfterEnd() -> LifeboatError {
        LifeboatError(.internalError, "the encrypted writer of '\(key)' was used after it ended")
    }

    func commit() throws {
        var sealer = try takeSealer()
        var sealed: [UInt8] = []
        try sealer.sealLast(batch, into: &sealed)
        batch = []
        try sealed.withUnsafeBytes { try output.write($0) }
        try output.commit()
    }

    /// The sealer, back from the sealing thread once it has written every batch it was given
    /// (or the first error it met).
    private func takeSealer() throws -> ChunkSealer {
        if let thread {
            self.thread = nil
            sealer = try thread.finish()
        }
        guard let sealer else { throw usedAfterEnd() }
        self.sealer = nil
        return sealer
    }

    func abort() {
        batch = []
        thread?.cancel()
        thread = nil
        sealer = nil
        output.abort()
    }
}

/// The thread that seals and writes the full batches of one object, one at a time and in
/// order. `submit` and `finish` are called by the writer's thread only; the hand-over (under
/// `condition`) orders every access to the sealer, the output and the buffers between the two.
final class SealingThread: @unchecked Sendable {
    private let condition = NSCondition()
    private let output: any ObjectWriter
    private var sealer: ChunkSealer
    /// The batch given to the thread and not yet taken by it.
    private var waiting: [UInt8]?
    /// A buffer the thread is done with, for the writer to fill next.
    private var spare: [UInt8] = []
    private var busy = false
    private var closing = false
    private var ended = false
    private var failure: (any Error)?

    init(output: any ObjectWriter, sealer: ChunkSealer, name: String) {
        self.output = output
        self.sealer = sealer
        let thread = Thread { [self] in run() }
        thread.name = name
        thread.start()
    }

    /// Hands `batch` over once the batch before is sealed and written; returns that batch's
    /// buffer, emptied, to fill next. Throws what sealing or writing an earlier batch threw.
    func submit(_ batch: [UInt8]) throws -> [UInt8] {
        condition.lock()
        defer { condition.unlock() }
        while waiting != nil || busy, failure == nil { condition.wait() }
        if let failure { throw failure }
        waiting = batch
        condition.broadcast()
        var empty: [UInt8] = []
        swap(&empty, &spare)
        empty.removeAll(keepingCapacity: true)
        return empty
    }

    /// Waits until every batch handed over is sealed and written, ends the thread and returns
    /// the sealer (its next chunk index); throws the first error the thread met.
    func finish() throws -> ChunkSealer {
        condition.lock()
        defer { condition.unlock() }
        closing = true
        condition.broadcast()
        while !ended { condition.wait() }
        if let failure { throw failure }
        return sealer
    }

    /// Ends the thread without sealing what it was given and not yet taken (the writer aborts).
    func cancel() {
        condition.lock()
        defer { condition.unlock() }
        waiting = nil
        closing = true
        condition.broadcast()
        while !ended { condition.wait() }
    }

    private func run() {
        condition.lock()
        while true {
            while waiting == nil, !closing { condition.wait() }
            guard var batch = waiting, failure == nil else { break }
            waiting = nil
            busy = true
            condition.unlock()
            let error = seal(batch, into: &sealedBuffer)
            batch.removeAll(keepingCapacity: true)
            condition.lock()
            busy = false
            spare = batch
            condition.broadcast()
            if let error {
                failure = error
                break
            }
        }
        ended = true
        condition.broadcast()
        condition.unlock()
    }

    /// The sealed bytes of the batch being written, kept for the next (only the thread
    /// touches it; passed `inout`, never copied, so its storage is reused).
    private var sealedBuffer: [UInt8] = []

    private func seal(_ batch: [UInt8], into sealed: inout [UInt8]) -> (any Error)? {
        do {
            sealed.removeAll(keepingCapacity: true)
            try sealer.sealWholeChunks(batch[...], into: &sealed)  // a full batch never holds the final chunk
            try sealed.withUnsafeBytes { try output.write($0) }
            return nil
        } catch {
            return error
        }
    }
}

extension ChunkSealer {
    /// Appends `ciphertext || tag` of every whole chunk of `plaintext` to `sealed`, none of
    /// them final; returns what is left (less than a chunk).
    @discardableResult
    mutating func sealWholeChunks(_ plaintext: ArraySlice<UInt8>, into sealed: inout [UInt8]) throws -> ArraySlice<UInt8> {
        sealed.reserveCapacity(sealed.count + plaintext.count + (plaintext.count / chunkSize + 1) * EncryptionFormat.tagSize)
        var rest = plaintext
        while rest.count >= chunkSize {
            sealed.append(contentsOf: try seal(rest.prefix(chunkSize), final: false))
            rest = rest.dropFirst(chunkSize)
        }
        return rest
    }

    /// Appends the rest of an object: its whole chunks, then the final chunk of `P mod C`
    /// bytes (maybe none).
    mutating func sealLast(_ plaintext: [UInt8], into sealed: inout [UInt8]) throws {
        let rest = try sealWholeChunks(plaintext[...], into: &sealed)
        sealed.append(contentsOf: try seal(rest, final: true))
    }
}
