import { defineConfig } from "vite";

// Built into the Python package (gitignored there, shipped in the wheel); relative URLs so the
// same build works at / (trainyard ui) and at /studio/ (trainyard server).
export default defineConfig({
  base: "./",
  build: {
    outDir: "../../src/trainyard/studio/static",
    emptyOutDir: true,
    sourcemap: false,
    chunkSizeWarningLimit: 600,
  },
});
