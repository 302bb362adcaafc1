// esbuild bundles the stylesheet imported by main.ts into dist/app-<hash>.css.
declare module "*.css";
