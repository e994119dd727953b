import ArgumentParser
import Foundation
import LifeboatCore

// A main of our own instead of `@main`, so that every failure maps to Lifeboat's exit
// statuses: 0 done, 1 the operation failed, 2 bad input. (ArgumentParser's own usage
// errors would otherwise exit with 64.)
func report(_ text: String) {
    FileHandle.standardError.write(Data((Secrets.redact(text) + "\n").utf8))
}

do {
    var command = try Lifeboat.parseAsRoot()
    try command.run()
    exit(0)
} catch let error as LifeboatError {
    report("error: \(error)")
    exit(error.exitStatus)
} catch let errors as LifeboatErrors {
    for error in errors.errors { report("error: \(error)") }
    report("\(errors.errors.count) error\(errors.errors.count == 1 ? "" : "s") found")
    exit(errors.exitStatus)
} catch let code as ExitCode {
    exit(code.rawValue)
} catch {
    let code = Lifeboat.exitCode(for: error)
    if code == .success {
        print(Lifeboat.fullMessage(for: error))
        exit(0)
    }
    report(Lifeboat.fullMessage(for: error))
    // ArgumentParser reports bad arguments as EX_USAGE (64): that is bad input, status 2.
    exit(code == .validationFailure ? 2 : code.rawValue)
}
