import LifeboatCore

extension ChildProcess {
    /// Runs `body` — which feeds the child's standard input or drains its output — and then
    /// requires the child to exit with status 0: a dump that stopped early or a restore that
    /// failed half-way must never pass for a complete one.
    ///
    /// - When `body` fails because the child stopped reading (a `.process` error: a broken
    ///   pipe), the child's own exit and standard error say why, and that is what is thrown.
    /// - When `body` fails for a reason of our own (the repository, a checksum), the child is
    ///   stopped and reaped, and that error goes on unchanged.
    /// - Failures are `LifeboatError(code, "<what> exited with status N: <stderr>", hint:)`.
    public func supervise(_ what: String, code: LifeboatError.Code, hint: String,
                          _ body: (ChildProcess) throws -> Void) throws {
        do {
            try body(self)
        } catch let error as LifeboatError where error.code == .process {
            closeStdin()
            throw failure(try wait(), what: what, code: code, hint: hint, underlying: error)
        } catch {
            terminate()
            _ = try? wait()  // reaping a child stopped for an error that is already on its way
            throw error
        }
        closeStdin()
        let termination = try wait()
        guard termination.isSuccess else { throw failure(termination, what: what, code: code, hint: hint, underlying: nil) }
    }

    private func failure(_ termination: Termination, what: String, code: LifeboatError.Code, hint: String,
                         underlying: (any Error & Sendable)?) -> LifeboatError {
        LifeboatError(code, "\(what) \(termination): \(stderrText.trimmingCharacters(in: .whitespacesAndNewlines))",
                      hint: hint, underlying: underlying)
    }
}
