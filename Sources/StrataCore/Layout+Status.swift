import Foundation

extension Layout {
    /// `{P}{collection}/snapshot/compactor-status.json`: the last refusal of a compactor for this
    /// collection (Docs/FORMATS.md, "Compactor status"). Best effort; `snapctl verify` shows it.
    public func compactorStatusKey(_ collection: String) -> String {
        "\(snapshotPrefix(collection))compactor-status.json"
    }
}
