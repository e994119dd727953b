import Foundation

/// The variables through which a drill's steps reach the scratch targets its restore steps
/// were redirected to: `${TARGET_<STEP>_<FIELD>}`, STEP the restore step's id in capitals with
/// `-` as `_` (`restore-hub-postgres` → `TARGET_RESTORE_HUB_POSTGRES_PORT`). Set by
/// `lifeboat drill` once the step has restored; `lifeboat check` accepts them in steps that
/// run only in drill mode (or with a default), after the restore step they name.
public enum DrillTargetVariables {
    /// What a scratch target offers (not every field for every kind: see the README).
    public static let fields = ["HOST", "PORT", "SOCKET", "CONNINFO", "URL", "DIR", "BUCKET", "PREFIX", "ENDPOINT"]

    /// `restore-hub-postgres` → `RESTORE_HUB_POSTGRES`.
    public static func key(ofStep id: String) -> String {
        id.uppercased().replacingOccurrences(of: "-", with: "_")
    }

    public static func name(step id: String, field: String) -> String {
        "TARGET_\(key(ofStep: id))_\(field)"
    }

    /// The restore step (among `restoreStepIDs`) and field a variable name refers to, or nil
    /// when it is no scratch target variable.
    public static func reference(_ name: String, restoreStepIDs: [String]) -> (step: String, field: String)? {
        guard name.hasPrefix("TARGET_") else { return nil }
        for id in restoreStepIDs {
            let prefix = "TARGET_\(key(ofStep: id))_"
            if name.hasPrefix(prefix), fields.contains(String(name.dropFirst(prefix.count))) {
                return (id, String(name.dropFirst(prefix.count)))
            }
        }
        return nil
    }
}
