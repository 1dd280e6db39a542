import ArgumentParser
import Foundation
import StrataCore

/// Exit codes, stable for scripts:
///   0 success; 1 the operation failed (or found a problem); 2 usage or configuration error;
///   3 a conditional write lost (precondition failed); for `compact`, a run was quarantined or deferred.
enum ExitCodes {
    static let failure: Int32 = 1
    static let usage: Int32 = 2
    static let precondition: Int32 = 3
    static let quarantinedOrDeferred: Int32 = 3
}

enum CLIError: Error, CustomStringConvertible {
    case usage(String)
    case failed(String)

    var description: String {
        switch self {
        case .usage(let s), .failed(let s): return s
        }
    }
}

/// Runs a command body, printing any error in words and mapping it to an exit code.
func runReportingErrors(_ body: () throws -> Void) throws {
    do {
        try body()
    } catch let e as ExitCode {
        throw e
    } catch let e as CleanExit {
        throw e
    } catch {
        let (code, text) = describe(error)
        FileHandle.standardError.write(Data("snapctl: \(text)\n".utf8))
        throw ExitCode(code)
    }
}

func describe(_ error: Error) -> (Int32, String) {
    switch error {
    case let e as CLIError:
        if case .usage = e { return (ExitCodes.usage, e.description) }
        return (ExitCodes.failure, e.description)
    case let e as StoreError:
        switch e.kind {
        case .preconditionFailed: return (ExitCodes.precondition, e.description)
        case .configuration: return (ExitCodes.usage, e.description)
        default: return (ExitCodes.failure, e.description)
        }
    case let e as StrataError:
        // A bad input line or row is a failed operation (1); flag and setting errors are usage (2)
        // and are raised as CLIError.usage before any work starts.
        return (ExitCodes.failure, e.description)
    default:
        return (ExitCodes.failure, String(describing: error))
    }
}
