import Foundation

/// A domain error a human can act on: which object, which field, what is wrong, and the fix.
public struct StrataError: Error, CustomStringConvertible, Sendable {
    public enum Kind: String, Sendable {
        /// Input the caller can correct (a bad row, a bad name, a bad flag).
        case invalidInput
        /// Data that exists but is damaged or hostile (checksum, format, archive).
        case corrupt
        /// A format newer than this build understands.
        case unsupportedVersion
        /// Something expected is missing.
        case notFound
        /// A concurrent writer got there first.
        case conflict
        /// An invariant would be broken; the operation was refused.
        case refused
        /// Local I/O failed.
        case io
    }

    public var kind: Kind
    /// The thing at fault: a key, a file, a line, an id.
    public var object: String
    /// The field or part of it, when there is one.
    public var field: String?
    public var message: String
    /// What the user should do about it.
    public var fix: String?

    public init(_ kind: Kind, object: String, field: String? = nil, message: String, fix: String? = nil) {
        self.kind = kind
        self.object = object
        self.field = field
        self.message = message
        self.fix = fix
    }

    public var description: String {
        var s = object
        if let field { s += ", field \"\(field)\"" }
        s += ": \(message)"
        if let fix { s += " (fix: \(fix))" }
        return s
    }
}
