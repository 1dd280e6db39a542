import Foundation
import StrataCore
import Synchronization

extension Compactor {
    /// Step 1 of a round: the pointer and its ETag, or nil for a new collection. A pointer that is
    /// missing while complete versions exist, or that cannot be parsed, stops the round with an
    /// error that names the newest complete version, its rows and the command that restores it
    /// (SPEC invariant 12). Versions are listed only when the pointer is missing or unreadable.
    func readPointerOrStop(_ c: String) throws -> (version: String, etag: String)? {
        let history = VersionHistory(store: store, layout: layout)
        let pointer: (version: String, etag: String)?
        do {
            pointer = try Pointer.read(from: store, layout: layout, collection: c)
        } catch let e as StrataError where e.kind == .corrupt {
            throw try history.lostPointerError(c, damage: e.message) ?? e
        }
        if pointer != nil { return pointer }
        guard let stop = try history.lostPointerError(c, damage: nil) else { return nil }
        // Another compactor may be publishing this collection's first version right now (its
        // manifest is up, its pointer not yet): look again before calling the pointer lost.
        if try store.head(layout.pointerKey(c)) != nil { throw PointerConflict() }
        throw stop
    }
}

extension Compactor {
    /// Leaves a status for each collection when the worker refuses the whole store before its
    /// first round (e.g. the conditional-write probe failed). Best effort.
    public func reportRefusal(collections: [String], _ error: Error) {
        for c in collections where (try? Layout.validate(collection: c)) != nil { recordStatus(c, error) }
    }

    /// Leaves `{c}/snapshot/compactor-status.json` saying why this round failed. Best effort:
    /// a store that refuses it (the very failure being reported, perhaps) is only logged.
    func recordStatus(_ c: String, _ error: Error) {
        if error is CancellationError { return }
        var kind: String? = nil
        var fix: String? = nil
        var refused = false
        switch error {
        case let e as StrataError:
            kind = e.kind.rawValue
            fix = e.fix
            refused = e.kind == .refused || e.kind == .corrupt || e.kind == .unsupportedVersion
        case let e as StoreError:
            kind = e.kind.rawValue
            fix = e.hint
            refused = e.kind == .integrity  // the base's bytes do not match: an operator must act
        default: break
        }
        let text: String
        if let e = error as? StrataError {
            text = e.object + (e.field.map { ", field \"\($0)\"" } ?? "") + ": " + e.message
        } else {
            text = "\(error)"
        }
        let status = CompactorStatus(
            collection: c, state: refused ? "refused" : "failed", errorKind: kind, error: text,
            fix: fix, at: Date(), compactorId: settings.compactorId, host: settings.host)
        do {
            try store.put(
                layout.compactorStatusKey(c), data: try StrataJSON.encoder().encode(status),
                options: PutOptions(contentType: "application/json"))
            statusMemory.update { $0.written.insert(c) }
        } catch {
            logger.warning(
                "could not leave the compactor status",
                metadata: ["collection": "\(c)", "error": "\(error)"])
        }
    }

    /// Removes a status this compactor (or, once per process, any compactor) left, after a round
    /// that succeeded. Costs one DELETE per collection per process, then only after failures.
    func clearStatus(_ c: String) {
        let due = statusMemory.update { m -> Bool in
            defer { m.checked.insert(c) }
            return m.written.contains(c) || !m.checked.contains(c)
        }
        guard due else { return }
        do {
            try store.delete(layout.compactorStatusKey(c))
            statusMemory.update { $0.written.remove(c) }
        } catch {
            logger.debug(
                "could not remove the compactor status", metadata: ["collection": "\(c)", "error": "\(error)"])
        }
    }
}

/// Which collections this compactor left a status for, and which it has cleared once.
final class StatusMemory: Sendable {
    struct State {
        var written = Set<String>()
        var checked = Set<String>()
    }
    private let state = Mutex(State())

    @discardableResult
    func update<T: Sendable>(_ body: (inout State) -> T) -> T {
        state.withLock { body(&$0) }
    }
}
