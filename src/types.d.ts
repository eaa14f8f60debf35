// Module declarations for files Bun imports as text (embedded into the binary by bun build --compile).
declare module "*.toml" {
  const text: string;
  export default text;
}
declare module "*.html" {
  const text: string;
  export default text;
}
