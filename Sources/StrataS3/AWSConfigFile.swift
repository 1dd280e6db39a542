import Foundation
import StrataCore

/// One parsed AWS shared file: `~/.aws/config` or `~/.aws/credentials`.
///
/// The format is the INI dialect the AWS SDKs share:
/// - `[default]` and `[profile NAME]` in the config file; `[NAME]` in the credentials file. In the
///   config file `[profile default]` wins over `[default]`; other bare sections (`[dev]`) are not
///   profiles there, and are remembered only to explain a "profile not found" error.
/// - `[services NAME]` and `[sso-session NAME]` sections (config file) are kept as sections.
/// - Lines whose first non-blank character is `#` or `;` are comments; in a value, `#` or `;`
///   preceded by whitespace starts a comment. Keys are case-insensitive (stored lower-cased),
///   profile names are case-sensitive. Whitespace around keys, values and names is trimmed.
/// - An indented line continues the previous property: if that property's value was empty the
///   indented lines are a nested block (`s3 =` then `  addressing_style = path`), otherwise they
///   are appended to the value on new lines.
/// - A section or key repeated later in the file overrides the earlier one, key by key.
public struct AWSConfigFile: Sendable {
    public enum Kind: String, Sendable {
        case config
        case credentials
    }

    /// The settings of one section: plain properties and nested blocks (`s3`, `sts`, ...).
    public struct Section: Sendable, Equatable {
        public var properties: [String: String] = [:]
        public var nested: [String: [String: String]] = [:]

        public init(properties: [String: String] = [:], nested: [String: [String: String]] = [:]) {
            self.properties = properties
            self.nested = nested
        }

        public subscript(key: String) -> String? { properties[key.lowercased()] }

        /// Keys whose values are never shown: secrets and tokens (but not token file paths).
        static func isSecret(_ key: String) -> Bool {
            (key.contains("secret") || key.contains("token") || key.contains("password")) && !key.hasSuffix("_file")
        }

        mutating func merge(_ other: Section) {
            properties.merge(other.properties) { $1 }
            for (k, v) in other.nested { nested[k, default: [:]].merge(v) { $1 } }
        }
    }

    public let path: String
    public let kind: Kind
    /// Profiles by name (`default`, `dev`).
    public private(set) var profiles: [String: Section] = [:]
    /// Non-profile sections of the config file, by type and name: `services` → `local` → section.
    public private(set) var sections: [String: [String: Section]] = [:]
    /// Section headers that look like a profile written the wrong way for this file (`[dev]` in the
    /// config file, `[profile dev]` in the credentials file), by the profile name they suggest.
    public private(set) var misplacedProfiles: [String: String] = [:]

    public init(path: String, kind: Kind) {
        self.path = path
        self.kind = kind
    }

    /// Reads and parses `path`; nil when the file does not exist.
    public static func load(path: String, kind: Kind) throws -> AWSConfigFile? {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir) else { return nil }
        if isDir.boolValue {
            throw StoreError(
                .configuration, operation: "read AWS \(kind.rawValue) file", key: path,
                message: "is a directory, not a file")
        }
        let data: Data
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: path))
        } catch {
            throw StoreError(
                .io, operation: "read AWS \(kind.rawValue) file", key: path,
                message: "cannot read: \(error.localizedDescription)")
        }
        guard let text = String(data: data, encoding: .utf8) else {
            throw StoreError(
                .configuration, operation: "read AWS \(kind.rawValue) file", key: path,
                message: "is not UTF-8 text")
        }
        return try parse(text, path: path, kind: kind)
    }

    /// Parses the text of a shared file. `path` is used in messages only.
    public static func parse(_ text: String, path: String, kind: Kind) throws -> AWSConfigFile {
        var file = AWSConfigFile(path: path, kind: kind)
        var parser = Parser(file: file)
        var lineNumber = 0
        // "\r\n" is one Character in Swift, so it is named as a separator of its own.
        for rawLine in text.split(omittingEmptySubsequences: false, whereSeparator: { $0 == "\n" || $0 == "\r\n" }) {
            lineNumber += 1
            var line = Substring(rawLine)
            if line.last == "\r" { line = line.dropLast() }
            if lineNumber == 1, line.hasPrefix("\u{FEFF}") { line = line.dropFirst() }
            try parser.consume(line, number: lineNumber)
        }
        parser.flush()
        file = parser.file
        return file
    }

    /// A parse error at a line. The line's text is not shown: it may hold a secret.
    static func syntaxError(_ path: String, _ kind: Kind, line: Int, _ message: String) -> StoreError {
        StoreError(
            .configuration, operation: "read AWS \(kind.rawValue) file", key: "\(path):\(line)",
            message: message,
            hint: "the file is INI: [section] headers, then key = value lines")
    }

    private struct Parser {
        var file: AWSConfigFile
        /// Where properties go now; nil before the first section or inside an ignored one.
        var target: Target?
        var current = Section()
        var lastKey: String?
        /// True while reading the indented lines of a nested block (`s3 =`).
        var inNested = false
        var seenSection = false

        enum Target {
            case profile(String, explicitPrefix: Bool)
            case section(type: String, name: String)
            case ignored
        }

        init(file: AWSConfigFile) { self.file = file }

        static func isBlank(_ c: Character) -> Bool { c == " " || c == "\t" }

        /// Text before an inline comment: `#` or `;` that follows whitespace.
        static func stripComment(_ s: Substring) -> Substring {
            var prev: Character = " "
            var idx = s.startIndex
            while idx < s.endIndex {
                let c = s[idx]
                if (c == "#" || c == ";") && isBlank(prev) { return s[s.startIndex..<idx] }
                prev = c
                idx = s.index(after: idx)
            }
            return s
        }

        static func trim(_ s: Substring) -> String { s.trimmingCharacters(in: .whitespaces) }

        mutating func consume(_ line: Substring, number: Int) throws {
            let trimmed = Parser.trim(line)
            if trimmed.isEmpty || trimmed.hasPrefix("#") || trimmed.hasPrefix(";") { return }
            if trimmed.hasPrefix("[") {
                try header(trimmed[...], number: number)
                return
            }
            let indented = line.first.map(Parser.isBlank) ?? false
            if indented && seenSection {
                try continuation(trimmed[...], number: number)
                return
            }
            try property(trimmed[...], number: number)
        }

        mutating func header(_ line: Substring, number: Int) throws {
            guard let close = line.firstIndex(of: "]") else {
                throw AWSConfigFile.syntaxError(file.path, file.kind, line: number, "section header without ']'")
            }
            let after = Parser.trim(line[line.index(after: close)...])
            if !after.isEmpty && !after.hasPrefix("#") && !after.hasPrefix(";") {
                throw AWSConfigFile.syntaxError(
                    file.path, file.kind, line: number,
                    "unexpected text after a section header")
            }
            flush()
            seenSection = true
            let inner = Parser.trim(line[line.index(after: line.startIndex)..<close])
            if inner.isEmpty {
                throw AWSConfigFile.syntaxError(file.path, file.kind, line: number, "empty section name")
            }
            let words = inner.split(whereSeparator: { Parser.isBlank($0) })
            switch file.kind {
            case .credentials:
                if words.count == 2, words[0] == "profile" {
                    file.misplacedProfiles[String(words[1])] = "[\(inner)]"
                }
                target = .profile(inner, explicitPrefix: false)
            case .config:
                if words.count == 1 && inner == "default" {
                    target = .profile("default", explicitPrefix: false)
                } else if words.count == 2 && words[0] == "profile" {
                    target = .profile(String(words[1]), explicitPrefix: true)
                } else if words.count == 2 && (words[0] == "services" || words[0] == "sso-session") {
                    target = .section(type: String(words[0]), name: String(words[1]))
                } else {
                    if words.count == 1 { file.misplacedProfiles[inner] = "[\(inner)]" }
                    target = .ignored
                }
            }
        }

        mutating func property(_ line: Substring, number: Int) throws {
            guard seenSection else {
                throw AWSConfigFile.syntaxError(
                    file.path, file.kind, line: number,
                    "a setting before the first [section] header")
            }
            guard let eq = line.firstIndex(of: "=") else {
                throw AWSConfigFile.syntaxError(
                    file.path, file.kind, line: number,
                    "expected 'key = value'")
            }
            let key = Parser.trim(line[..<eq]).lowercased()
            if key.isEmpty {
                throw AWSConfigFile.syntaxError(file.path, file.kind, line: number, "a setting without a name")
            }
            let value = Parser.trim(Parser.stripComment(line[line.index(after: eq)...]))
            current.properties[key] = value
            lastKey = key
            inNested = value.isEmpty
        }

        mutating func continuation(_ line: Substring, number: Int) throws {
            guard let lastKey else {
                throw AWSConfigFile.syntaxError(
                    file.path, file.kind, line: number,
                    "an indented line that continues no setting")
            }
            if inNested {
                guard let eq = line.firstIndex(of: "=") else {
                    throw AWSConfigFile.syntaxError(
                        file.path, file.kind, line: number,
                        "expected 'key = value' in the nested block of '\(lastKey)'")
                }
                let key = Parser.trim(line[..<eq]).lowercased()
                let value = Parser.trim(Parser.stripComment(line[line.index(after: eq)...]))
                current.nested[lastKey, default: [:]][key] = value
                current.properties.removeValue(forKey: lastKey)
            } else {
                let prev = current.properties[lastKey] ?? ""
                current.properties[lastKey] = prev + "\n" + Parser.trim(Parser.stripComment(line))
            }
        }

        mutating func flush() {
            defer {
                current = Section()
                lastKey = nil
                inNested = false
            }
            switch target {
            case .profile(let name, let explicitPrefix):
                if file.kind == .config && name == "default" {
                    // `[profile default]` wins over `[default]`, whichever comes first.
                    if explicitPrefix {
                        explicitDefault.merge(current)
                    } else {
                        plainDefault.merge(current)
                    }
                    var merged = plainDefault
                    if hasExplicitDefault || explicitPrefix {
                        hasExplicitDefault = true
                        merged = explicitDefault
                    }
                    file.profiles["default"] = merged
                } else {
                    file.profiles[name, default: Section()].merge(current)
                }
            case .section(let type, let name):
                file.sections[type, default: [:]][name, default: Section()].merge(current)
            case .ignored, .none:
                break
            }
        }

        var plainDefault = Section()
        var explicitDefault = Section()
        var hasExplicitDefault = false
    }
}

/// Printing or dumping a section shows its keys with secrets and tokens redacted.
extension AWSConfigFile.Section: CustomStringConvertible, CustomDebugStringConvertible, CustomReflectable {
    private static func redacted(_ values: [String: String]) -> [String: String] {
        var out: [String: String] = [:]
        for (k, v) in values { out[k] = isSecret(k) ? "<redacted>" : v }
        return out
    }

    public var description: String {
        var parts = Self.redacted(properties).sorted { $0.key < $1.key }.map { "\($0.key) = \($0.value)" }
        for (block, values) in nested.sorted(by: { $0.key < $1.key }) {
            let inner = Self.redacted(values).sorted { $0.key < $1.key }.map { "\($0.key) = \($0.value)" }
            parts.append("\(block) = { \(inner.joined(separator: ", ")) }")
        }
        return "[" + parts.joined(separator: "; ") + "]"
    }

    public var debugDescription: String { description }

    public var customMirror: Mirror {
        Mirror(
            self,
            children: [
                "properties": Self.redacted(properties),
                "nested": nested.mapValues { Self.redacted($0) },
            ])
    }
}
