"""One folder per metaflow feature (module): its data, its services and its call-side code."""
