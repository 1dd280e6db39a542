import Foundation

/// When a version is a patch on the chain, when the chain is merged, and when a new base is written
/// (Docs/design/0002-page-patch-versions.md, "Chain policy"). The constants are settings; the
/// decision is a pure function of the chain, so it is the same on every compactor.
public struct PageChainPolicy: Sendable, Equatable {
    /// K: single-merge patches at the end of the chain before they are merged into one.
    public var maxTailLength = 8
    /// Merged patches before all patches are merged into one.
    public var maxMergedPatches = 8
    /// A new base when the chain's bytes would pass this share of the base's bytes, so a cold
    /// reader downloads at most (1 + share) x the file.
    public var maxPatchShare = 0.5
    /// A new base when one patch rewrites more than this share of the file's pages (VACUUM, a
    /// rebuild): patching would cost about as much as the file.
    public var rewriteShare = 0.5

    public init() {}

    /// One patch of the current chain: its bytes and whether it is a merge of several.
    public struct Patch: Sendable, Equatable {
        public var bytes: Int64
        public var merged: Bool
        public init(bytes: Int64, merged: Bool) {
            self.bytes = bytes
            self.merged = merged
        }
    }

    public enum NewBaseReason: String, Sendable, Equatable {
        /// The chain's bytes would pass `maxPatchShare` of the base.
        case patchShare
        /// The new patch rewrites more than `rewriteShare` of the pages.
        case rewrite
        /// The page size changed (patches never change it).
        case pageSize
        /// The snapshot's schema or format changed (an upgrade): a new base is checked in full.
        case schema
    }

    public enum Decision: Sendable, Equatable {
        /// Publish chain + the new patch.
        case append
        /// Merge the last `count` patches (the tail and the new patch) into one merged patch.
        case mergeTail(count: Int)
        /// Merge every patch and the new one into one merged patch.
        case mergeAll
        /// Write the materialized file as a new base with no patches.
        case newBase(NewBaseReason)
    }

    /// What to publish after a merge that produced a patch of `newPatchBytes` bytes and
    /// `newPatchFrames` pages, for a file of `pageCount` pages, on a base of `baseBytes` with
    /// `chain` before it.
    public func decide(
        baseBytes: Int64, chain: [Patch], newPatchBytes: Int64, newPatchFrames: Int, pageCount: Int,
        pageSizeChanged: Bool = false, schemaChanged: Bool = false
    ) -> Decision {
        if pageSizeChanged { return .newBase(.pageSize) }
        if schemaChanged { return .newBase(.schema) }
        if Double(newPatchFrames) > rewriteShare * Double(max(pageCount, 1)) { return .newBase(.rewrite) }
        let total = chain.reduce(newPatchBytes) { $0 + $1.bytes }
        if Double(total) > maxPatchShare * Double(baseBytes) { return .newBase(.patchShare) }
        let tail = chain.reversed().prefix { !$0.merged }.count
        guard tail + 1 > maxTailLength else { return .append }
        let mergedAfter = chain.filter(\.merged).count + 1
        return mergedAfter > maxMergedPatches ? .mergeAll : .mergeTail(count: tail + 1)
    }
}
