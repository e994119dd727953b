import LifeboatCore

/// Counts the bytes written through to the store and reports them as progress.
final class ProgressWriter: ObjectWriter {
    let inner: any ObjectWriter
    let what: String
    let progress: any ProgressReporter
    private var written: Int64 = 0

    init(_ inner: any ObjectWriter, what: String, progress: any ProgressReporter) {
        self.inner = inner
        self.what = what
        self.progress = progress
    }

    var key: String { inner.key }

    func write(_ bytes: UnsafeRawBufferPointer) throws {
        try inner.write(bytes)
        written += Int64(bytes.count)
        progress.update(what, done: written, total: nil)
    }

    func commit() throws {
        defer { progress.finish(what) }
        try inner.commit()
    }

    func abort() {
        progress.finish(what)
        inner.abort()
    }
}

/// Counts the bytes read from the store against the object's size, as progress.
final class ProgressReader: ObjectReader {
    let inner: any ObjectReader
    let what: String
    let total: Int64
    let progress: any ProgressReporter
    private var read: Int64 = 0

    init(_ inner: any ObjectReader, what: String, total: Int64, progress: any ProgressReporter) {
        self.inner = inner
        self.what = what
        self.total = total
        self.progress = progress
    }

    var key: String { inner.key }

    func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        let n = try inner.read(into: buffer)
        read += Int64(n)
        progress.update(what, done: read, total: total)
        return n
    }

    func close() {
        progress.finish(what)
        inner.close()
    }
}
