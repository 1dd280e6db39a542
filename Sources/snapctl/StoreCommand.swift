import ArgumentParser
import Foundation
import StrataCore

struct StoreCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "store",
        abstract: "Low-level object commands, like `aws s3`: ls, get, put, rm, presign, probe, mb.",
        discussion: """
            Keys are relative to the store URL's prefix: with --store s3://bkt/team, `snapctl store
            get lines/snapshot/latest-pointer.txt -` reads s3://bkt/team/lines/snapshot/latest-pointer.txt.
            """,
        subcommands: [Ls.self, Get.self, Put.self, Rm.self, Presign.self, Probe.self, Mb.self]
    )

    struct Ls: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "List keys under a prefix.",
            discussion: "Example: snapctl store ls lines/snapshot/ --recursive")
        @OptionGroup var global: GlobalOptions
        @Argument(help: "Key prefix (default: everything).") var prefix: String = ""
        @Flag(name: .shortAndLong, help: "List every key below, not one level.") var recursive = false
        @Flag(help: "Print JSON lines (key, size, etag, lastModified).") var json = false

        func run() throws {
            try runReportingErrors {
                let (store, layout, _) = try global.openStore()
                let full = layout.prefix + prefix
                let strip = layout.prefix.count
                try store.forEachPage(prefix: full, delimiter: recursive ? nil : "/") { page in
                    for p in page.commonPrefixes {
                        print(
                            json
                                ? jsonLine(["prefix": String(p.dropFirst(strip))])
                                : String(repeating: " ", count: 30) + "PRE " + String(p.dropFirst(strip)))
                    }
                    for o in page.objects {
                        let key = String(o.key.dropFirst(strip))
                        if json {
                            var obj: [String: Any] = ["key": key, "size": o.size, "etag": o.etag]
                            if let d = o.lastModified { obj["lastModified"] = iso8601(d) }
                            print(jsonLine(obj))
                        } else {
                            let when = o.lastModified.map(iso8601) ?? "-"
                            print(
                                "\(when.padding(toLength: 24, withPad: " ", startingAt: 0)) "
                                    + "\(String(o.size).leftPadded(12)) \(key)")
                        }
                    }
                }
            }
        }
    }

    struct Get: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Download an object to a file, or to stdout with -.",
            discussion: "Example: snapctl store get lines/snapshot/latest-pointer.txt -")
        @OptionGroup var global: GlobalOptions
        @Argument(help: "Key.") var key: String
        @Argument(help: "Destination file, or - for stdout (default: the key's last segment).") var file: String?

        func run() throws {
            try runReportingErrors {
                let (store, layout, _) = try global.openStore()
                let dest = file ?? String(key.split(separator: "/").last ?? Substring(key))
                if dest == "-" {
                    let (data, _) = try store.getData(layout.prefix + key)
                    FileHandle.standardOutput.write(data)
                } else {
                    let total = try store.head(layout.prefix + key)?.size
                    let info = try Progress.run("downloading \(key)", total: total) {
                        try store.get(layout.prefix + key, toFile: dest)
                    }
                    FileHandle.standardError.write(Data("downloaded \(key) (\(info.size) bytes) to \(dest)\n".utf8))
                }
            }
        }
    }

    struct Put: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Upload a file (or stdin with -), optionally as a conditional write.",
            discussion: """
                Prints the new ETag. A lost condition exits with 3.
                Example: snapctl store put pointer.txt lines/snapshot/latest-pointer.txt --if-match '"abc"'
                """)
        @OptionGroup var global: GlobalOptions
        @Argument(help: "Source file, or - for stdin.") var file: String
        @Argument(help: "Key.") var key: String
        @Flag(help: "Create only: fail if the key exists (If-None-Match: *).") var ifNoneMatch = false
        @Option(help: "Replace only this version (If-Match: ETAG).") var ifMatch: String?
        @Option(help: "Content type.") var contentType: String?

        func validate() throws {
            if ifNoneMatch && ifMatch != nil {
                throw ValidationError("--if-none-match and --if-match exclude each other")
            }
        }

        func run() throws {
            try runReportingErrors {
                let (store, layout, _) = try global.openStore()
                let condition: WriteCondition = ifNoneMatch ? .ifNoneMatch : ifMatch.map { .ifMatch($0) } ?? .none
                let body: PutBody
                if file == "-" {
                    body = .data(FileHandle.standardInput.readDataToEndOfFile())
                } else {
                    guard FileManager.default.isReadableFile(atPath: file) else {
                        throw CLIError.usage("cannot read \(file): no such file, or not readable")
                    }
                    body = .file(path: file)
                }
                var total: Int64? = nil
                if case .file(let path) = body {
                    total = (try? FileManager.default.attributesOfItem(atPath: path)[.size] as? Int64) ?? nil
                }
                let info = try Progress.run("uploading \(key)", total: total) {
                    try store.put(
                        layout.prefix + key, body: body, condition: condition,
                        options: PutOptions(contentType: contentType))
                }
                print(info.etag)
            }
        }
    }

    struct Rm: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Delete keys (missing keys are not an error).",
            discussion: "Example: snapctl store rm lines/delta/R1/delta.tar.gz runs/R1.json")
        @OptionGroup var global: GlobalOptions
        @Argument(help: "Keys.") var keys: [String]

        func run() throws {
            try runReportingErrors {
                let (store, layout, _) = try global.openStore()
                let failures = try store.delete(keys: keys.map { layout.prefix + $0 })
                for f in failures {
                    FileHandle.standardError.write(
                        Data("snapctl: could not delete \(f.key): \(f.code) \(f.message)\n".utf8))
                }
                if !failures.isEmpty { throw ExitCode(ExitCodes.failure) }
            }
        }
    }

    struct Presign: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print a presigned URL so a client without credentials can GET (or PUT) one object.",
            discussion: "Example: snapctl store presign lines/snapshot/timestamped/V/snapshot.sqlite3 --expires 2h")
        @OptionGroup var global: GlobalOptions
        @Argument(help: "Key.") var key: String
        @Flag(help: "Presign an upload (PUT) instead of a download.") var put = false
        @Option(help: "Lifetime: seconds, or with a unit (30m, 1h, 7d); at most 7 days.") var expires: String = "1h"

        func run() throws {
            try runReportingErrors {
                let seconds = try parseDuration(expires, option: "--expires")
                guard seconds >= 1, seconds <= 7 * 86400 else {
                    throw CLIError.usage("--expires \(expires): must be between 1 second and 7 days (S3's limit)")
                }
                let (store, layout, _) = try global.openStore()
                print(try S3Support.presign(store: store, key: layout.prefix + key, put: put, expires: Int(seconds)))
            }
        }
    }

    struct Probe: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Check that the store enforces conditional writes (exit 1 if it does not).",
            discussion: """
                Writes scratch objects under .strata-probe/ and removes them. Some stores accept
                If-None-Match / If-Match and silently ignore them; the compactor refuses such a store
                unless run with --single-writer.
                Example: snapctl store probe --store s3://my-bucket
                """)
        @OptionGroup var global: GlobalOptions
        @Flag(help: "Print the report as JSON.") var json = false

        func run() throws {
            try runReportingErrors {
                let (store, layout, _) = try global.openStore()
                let r = try ConditionalWriteProbe.run(store: store, layout: layout)
                if json {
                    let enc = JSONEncoder()
                    enc.outputFormatting = [.prettyPrinted, .sortedKeys]
                    var obj = try JSONSerialization.jsonObject(with: try enc.encode(r)) as! [String: Any]
                    obj["conditionalWritesEnforced"] = r.conditionalWritesEnforced
                    print(jsonLine(obj, pretty: true))
                } else {
                    func mark(_ b: Bool) -> String { b ? "yes" : "NO " }
                    print("store: \(r.store)")
                    print("  \(mark(r.createOnlyEnforced))  If-None-Match: * on an existing key is refused")
                    print("  \(mark(r.currentIfMatchAccepted))  If-Match with the current ETag is accepted")
                    print("  \(mark(r.staleIfMatchRefused))  If-Match with a stale ETag is refused")
                    print("  \(mark(r.missingIfMatchRefused))  If-Match on a missing key is refused")
                    for n in r.notes { print("  note: \(n)") }
                    print(
                        r.conditionalWritesEnforced
                            ? "conditional writes are enforced: safe for concurrent compactors"
                            : "conditional writes are NOT enforced: run compactors with --single-writer, one at a time")
                }
                if !r.conditionalWritesEnforced { throw ExitCode(ExitCodes.failure) }
            }
        }
    }

    struct Mb: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Create the bucket (or the file store's directory). Succeeds if it is already yours.",
            discussion: "Example: snapctl store mb --store s3://my-bucket")
        @OptionGroup var global: GlobalOptions

        func run() throws {
            try runReportingErrors {
                let (store, _, loc) = try global.openStore()
                try S3Support.createBucket(store: store)
                print("ready: \(loc)")
            }
        }
    }
}

// MARK: helpers shared by commands

func jsonLine(_ obj: [String: Any], pretty: Bool = false) -> String {
    var opts: JSONSerialization.WritingOptions = [.sortedKeys, .withoutEscapingSlashes]
    if pretty { opts.insert(.prettyPrinted) }
    let data = (try? JSONSerialization.data(withJSONObject: obj, options: opts)) ?? Data("{}".utf8)
    return String(decoding: data, as: UTF8.self)
}

func iso8601(_ d: Date) -> String {
    let f = ISO8601DateFormatter()
    f.formatOptions = [.withInternetDateTime]
    return f.string(from: d)
}

/// "90" (seconds), "30s", "15m", "2h", "7d".
func parseDuration(_ s: String, option: String) throws -> Double {
    let units: [Character: Double] = ["s": 1, "m": 60, "h": 3600, "d": 86400]
    var text = Substring(s)
    var mult = 1.0
    if let u = text.last, let m = units[u] {
        mult = m
        text = text.dropLast()
    }
    guard let v = Double(text), v >= 0 else {
        throw CLIError.usage("\(option) \(s): expected a duration like 90, 30s, 15m, 2h or 7d")
    }
    return v * mult
}

extension String {
    func leftPadded(_ width: Int) -> String {
        count >= width ? self : String(repeating: " ", count: width - count) + self
    }
}
