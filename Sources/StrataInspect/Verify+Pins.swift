import Foundation
import StrataCore

extension VerifyCheck {
    /// Reader pins (SPEC 14): which versions they keep, and pins that cannot be read.
    public static let readerPins = "reader.pins"
}

extension Verifier {
    /// Lists the collection's reader pins: unexpired ones keep their version from gc.
    func checkPins(_ c: String) {
        do {
            let (pins, unreadable) = try ReaderPins(store: store, layout: layout).list(c)
            let live = pins.filter { !$0.isExpired(at: now) }
            let expired = pins.count - live.count
            var ev: VerifyEvidence = [
                "prefix": .string(layout.pinsPrefix(c)),
                "pins": listed(
                    live.map {
                        "\($0.pinId): \($0.version) until \(StrataJSON.iso8601($0.expiresAt)) by \($0.owner)"
                            + ($0.reason.map { " (\($0))" } ?? "")
                    }),
            ]
            if expired > 0 { ev["expired"] = .int(expired) }
            if !unreadable.isEmpty {
                ev["unreadable"] = listed(unreadable.map { "\($0.key): \($0.problem)" })
                add(
                    VerifyCheck.readerPins, c, .warning, "\(unreadable.count) reader pin(s) cannot be read", ev,
                    hint: "gc keeps every version and object of \(c) while a pin cannot be read; remove it with "
                        + "`snapctl pin \(c) --remove PIN_ID` or `snapctl store rm KEY`")
                return
            }
            var missing: [String] = []
            for p in live where (try? store.head(layout.manifestKey(collection: c, version: p.version))) == nil {
                missing.append("\(p.pinId): \(p.version)")
            }
            if !missing.isEmpty {
                ev["without_manifest"] = listed(missing)
                add(
                    VerifyCheck.readerPins, c, .warning, "\(missing.count) pin(s) name a version with no manifest", ev,
                    hint:
                        "a reader of that version cannot materialize it; "
                        + "remove the pin with `snapctl pin \(c) --remove PIN_ID`"
                )
                return
            }
            let message =
                live.isEmpty
                ? "no unexpired reader pins" + (expired > 0 ? " (\(expired) expired, gc removes them)" : "")
                : "\(live.count) reader pin(s) keep version(s) "
                    + "\(Set(live.map(\.version)).sorted().joined(separator: ", ")) from gc"
            add(VerifyCheck.readerPins, c, live.isEmpty ? .passed : .info, message, ev)
        } catch {
            addFailure(VerifyCheck.readerPins, c, "cannot list the reader pins", error)
        }
    }
}
