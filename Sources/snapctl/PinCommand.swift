import ArgumentParser
import Foundation
import StrataCore
import StrataInspect

struct PinCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pin",
        abstract: "Keep a version's objects from garbage collection while a long read needs them.",
        discussion: """
            A pin ({c}/snapshot/pins/{pin_id}.json) names a version and when it expires; gc keeps
            the version and every object it references (base, patches, files) until then, even
            when the version is older than the retention. pull, query and get pin the version
            while they download it and remove their pin afterwards.
            Exit status: 0 done, 1 failed, 2 usage.
            Examples:
              snapctl pin lines 20261121T204743355Z-39f9a720b193 --ttl 1h --reason "nightly export"
              snapctl pin lines --list
              snapctl pin lines --remove 20261121T210000000Z-1a2b3c4d5e6f
            """)

    @OptionGroup var global: GlobalOptions
    @Argument(help: "Collection.") var collection: String
    @Argument(help: "Version to pin (default: the one the pointer names).") var version: String?
    @Option(help: "Lifetime: seconds, or with a unit (30m, 1h, 7d).") var ttl: String = "1h"
    @Option(help: "Why, recorded in the pin.") var reason: String?
    @Flag(help: "List the collection's pins.") var list = false
    @Option(help: ArgumentHelp("Remove this pin.", valueName: "pin-id")) var remove: String?
    @Flag(help: "Print JSON.") var json = false

    func run() throws {
        try runReportingErrors {
            do { try Layout.validate(collection: collection) } catch { throw CLIError.usage(String(describing: error)) }
            guard !(list && remove != nil) else { throw CLIError.usage("give one of --list and --remove") }
            let (store, layout, _) = try global.openStore()
            let pins = ReaderPins(store: store, layout: layout)
            if list {
                let now = Date()
                let (all, bad) = try pins.list(collection)
                if json {
                    let data = try StrataJSON.encoder().encode(all)
                    print(String(decoding: data, as: UTF8.self))
                } else {
                    if all.isEmpty { print("no pins on \(collection)") }
                    for p in all {
                        let state = p.isExpired(at: now) ? "EXPIRED" : "until \(StrataJSON.iso8601(p.expiresAt))"
                        print("\(p.pinId)  \(p.version)  \(state)  \(p.owner)\(p.reason.map { "  \($0)" } ?? "")")
                    }
                }
                for b in bad {
                    FileHandle.standardError.write(Data("snapctl: UNREADABLE \(b.key): \(b.problem)\n".utf8))
                }
                return
            }
            if let remove {
                try pins.remove(collection, pinId: remove)
                if !json { print("removed pin \(remove) of \(collection)") }
                return
            }
            let seconds = try parseDuration(ttl, option: "--ttl")
            guard seconds > 0 else { throw CLIError.usage("--ttl \(ttl): a pin needs a positive lifetime") }
            if let version, !Identifiers.isValid(version) { throw CLIError.usage("\(version) is not a version id") }
            guard let v = try version ?? Pointer.read(from: store, layout: layout, collection: collection)?.version
            else {
                throw CLIError.failed("\(collection) has no pointer; name a version")
            }
            let p = try pins.pin(collection, version: v, ttl: seconds, owner: nil, reason: reason)
            if json {
                print(String(decoding: try StrataJSON.encoder().encode(p), as: UTF8.self))
            } else {
                print(
                    "pinned \(collection) \(v) until \(StrataJSON.iso8601(p.expiresAt)) (pin \(p.pinId); "
                        + "remove with `snapctl pin \(collection) --remove \(p.pinId)`)")
            }
        }
    }
}
