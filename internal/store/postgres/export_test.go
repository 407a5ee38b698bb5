package postgres

// SchemaVersion is the version every opened schema is at.
func SchemaVersion() int { return len(migrations) }

// ClaimSQL is Claim's statement, for explaining its plan.
const ClaimSQL = claimSQL
