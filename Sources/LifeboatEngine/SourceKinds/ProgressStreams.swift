import LifeboatCore

/// Counts the bytes written through to the store, reports them as progress, and stops the
/// write as soon as the run is cancelled.
final class ProgressWriter: ObjectWriter {
    let inner: any ObjectWriter
    let what: String
    let context: RunContext
    private var written: Int64 = 0

    init(_ inner: any ObjectWriter, what: String, context: RunContext) {
        self.inner = inner
        self.what = what
        self.context = context
    }

    var key: String { inner.key }

    func write(_ bytes: UnsafeRawBufferPointer) throws {
        try context.cancellation.checkCancelled()
        try inner.write(bytes)
        if written == 0 { CrashPoint.writingArtifact.reach(context) }
        written += Int64(bytes.count)
        context.progress.update(what, done: written, total: nil)
    }

    func commit() throws {
        defer { context.progress.finish(what) }
        try context.cancellation.checkCancelled()
        try inner.commit()
    }

    func abort() {
        context.progress.finish(what)
        inner.abort()
    }
}

/// Counts the bytes read from the store against the object's size, as progress, and stops
/// reading as soon as the run is cancelled.
final class ProgressReader: ObjectReader {
    let inner: any ObjectReader
    let what: String
    let total: Int64
    let context: RunContext
    private var read: Int64 = 0

    init(_ inner: any ObjectReader, what: String, total: Int64, context: RunContext) {
        self.inner = inner
        self.what = what
        self.total = total
        self.context = context
    }

    var key: String { inner.key }

    func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        try context.cancellation.checkCancelled()
        let n = try inner.read(into: buffer)
        read += Int64(n)
        context.progress.update(what, done: read, total: total)
        return n
    }

    func close() {
        context.progress.finish(what)
        inner.close()
    }
}
