import Foundation

/// A collection's versions as the store holds them, whatever its pointer says (SPEC invariant 12):
/// which exist, and which is the newest *complete* one (its manifest present and valid, every file
/// it lists present with the manifest's size, and with the manifest's SHA-256 where the store
/// records one). The compactor asks when the pointer is missing or unreadable; gc, verify and
/// rollback use it to keep and to name the version that restores a collection.
///
/// Costs one listing of the versions, then a manifest GET and a HEAD per file for each version
/// checked, newest first, until a complete one is found. Store errors propagate: "could not look"
/// is never reported as "there is none".
public struct VersionHistory: Sendable {
    public let store: any ObjectStore
    public let layout: Layout

    public init(store: any ObjectStore, layout: Layout) {
        self.store = store
        self.layout = layout
    }

    /// One version and what is wrong with it (nothing, when it is complete).
    public struct Checked: Sendable {
        public var version: String
        public var manifest: SnapshotManifest?
        /// Each problem names the file and its key.
        public var problems: [String]
        public var isComplete: Bool { manifest != nil && problems.isEmpty }
    }

    /// What the store holds for a collection: every version id (oldest first) and the newest
    /// complete version, if any.
    public struct Survey: Sendable {
        public var collection: String
        public var versions: [String]
        public var newestComplete: Checked?
        /// Versions newer than `newestComplete` that were checked and found incomplete.
        public var incomplete: [Checked]
    }

    /// Version ids under `{c}/snapshot/timestamped/`, oldest first, taken from the objects present
    /// (some servers keep reporting an empty "directory").
    public func versions(_ c: String) throws -> [String] {
        let base = layout.versionsPrefix(c)
        var ids = Set<String>()
        for o in try store.list(prefix: base) {
            if let v = layout.version(ofVersionObject: o.key, collection: c) { ids.insert(v) }
        }
        return ids.sorted()
    }

    /// Checks one version: manifest present and naming it, each file present with its size and,
    /// where the store records a SHA-256, that hash.
    public func check(_ c: String, version v: String) throws -> Checked {
        let mKey = layout.manifestKey(collection: c, version: v)
        guard let (data, _) = try store.getDataIfExists(mKey) else {
            return Checked(version: v, manifest: nil, problems: ["\(Layout.manifestFileName) is missing (\(mKey))"])
        }
        let m: SnapshotManifest
        do {
            m = try SnapshotManifest.decode(data, key: mKey)
        } catch let e as StrataError {
            return Checked(
                version: v, manifest: nil,
                problems: ["\(Layout.manifestFileName) is unusable: \(e.description)"])
        }
        guard m.collection == c, m.version == v else {
            return Checked(
                version: v, manifest: nil,
                problems: ["\(Layout.manifestFileName) names \(m.collection)/\(m.version) (\(mKey))"])
        }
        var problems: [String] = []
        if m.files.isEmpty && !m.isPageVersion { problems.append("the manifest lists no files (\(mKey))") }
        do { try m.checkKeys(layout: layout, key: mKey) } catch let e as StrataError { problems.append(e.description) }
        // A page version's base and patches, or a whole-file version's files.
        for f in m.objects(layout: layout) {
            let key = f.key
            guard let info = try store.head(key) else {
                problems.append("\(f.name) is missing (\(key))")
                continue
            }
            if info.size != f.size {
                problems.append("\(f.name) is \(info.size) bytes; the manifest says \(f.size) (\(key))")
            } else if let sha = info.sha256, sha != f.sha256 {
                problems.append("\(f.name) has SHA-256 \(sha); the manifest says \(f.sha256) (\(key))")
            }
        }
        return Checked(version: v, manifest: m, problems: problems)
    }

    /// Every version, and the newest complete one (looking back at most `depth` versions).
    public func survey(_ c: String, depth: Int = 50) throws -> Survey {
        let all = try versions(c)
        var incomplete: [Checked] = []
        for v in all.reversed().prefix(depth) {
            let checked = try check(c, version: v)
            if checked.isComplete {
                return Survey(collection: c, versions: all, newestComplete: checked, incomplete: incomplete)
            }
            incomplete.append(checked)
        }
        return Survey(collection: c, versions: all, newestComplete: nil, incomplete: incomplete)
    }

    /// True when the collection never had a pointer: every version with a manifest is a first
    /// attempt (no parent, nothing rolled back) whose applied runs all still have their records,
    /// as when a first compaction uploaded its version and then failed or crashed before its
    /// pointer write. Starting from empty then loses nothing: those runs are still pending and are
    /// applied again, and the unpublished versions are orphans for gc. A version built on another
    /// (a parent), or one whose runs' records are gone (collected by gc after being applied), means
    /// the collection was published and its pointer lost.
    public func onlyUnpublishedFirstVersions(_ c: String, _ s: Survey) throws -> Bool {
        guard !s.versions.isEmpty else { return true }
        for v in s.versions {
            let mKey = layout.manifestKey(collection: c, version: v)
            guard let (data, _) = try store.getDataIfExists(mKey) else { continue }
            guard let m = try? SnapshotManifest.decode(data, key: mKey) else { return false }
            if m.parentVersion != nil || !(m.rolledBackRuns ?? []).isEmpty { return false }
            for r in m.appliedRuns where try store.head(layout.runRecordKey(r.runId)) == nil { return false }
        }
        return true
    }

    /// The command that republishes the pointer at `version` (a rollback, which works without a
    /// pointer or over an unreadable one).
    public static func restoreCommand(_ c: String, version: String, reason: String = "restore the lost pointer")
        -> String
    {
        "snapctl rollback \(c) \(version) --reason \"\(reason)\""
    }

    /// The error that stops a compaction of `c` whose pointer is missing (`damage` nil) or
    /// unreadable, when the store holds versions of it; nil when it holds no complete version and
    /// no version at all (a new collection). A version directory without a complete version (a
    /// first compaction that crashed before its manifest) does not stop it.
    public func lostPointerError(_ c: String, damage: String?) throws -> StrataError? {
        let s = try survey(c)
        let key = layout.pointerKey(c)
        let what = damage.map { "is unreadable (\($0))" } ?? "is missing"
        if damage == nil, try onlyUnpublishedFirstVersions(c, s) { return nil }
        guard let good = s.newestComplete, let m = good.manifest else {
            guard damage != nil else { return nil }
            return StrataError(
                .refused, object: key,
                message: "\(what) and no complete version of \(c) is left "
                    + "(\(s.versions.count) version\(s.versions.count == 1 ? "" : "s") "
                    + "without a usable manifest or files)",
                fix: "nothing was published; see `snapctl verify --collection \(c)` and `snapctl versions \(c)`")
        }
        return StrataError(
            .refused, object: key,
            message: "\(what), but \(c) has \(s.versions.count) version\(s.versions.count == 1 ? "" : "s"); the newest "
                + "complete one is \(good.version) (\(m.rowCount) rows). Compacting now would start \(c) again from "
                + "empty, so nothing was published",
            fix: "restore the pointer: `\(VersionHistory.restoreCommand(c, version: good.version))`, "
                + "then compact again")
    }
}
