// Type-aware lint: typescript-eslint's type-checked rules over every TypeScript file, plus the
// layer boundaries (scripts/check-imports.ts checks the same rule and cycles in `npm test`).
import tseslint from 'typescript-eslint';

// Left to right: a folder imports only itself and the folders before it.
const LAYERS = ['core', 'policies', 'netfilter', 'runtime', 'orchestration', 'api'];
const CLIENTS = ['sdk', 'cli', 'console'];
const SERVER = [...LAYERS];

/** One config block per folder and file depth: `../` repeated `depth` times is the project root there. */
function boundaries() {
  const blocks = [];
  const forbid = (folder, denied, message) => {
    for (let depth = 1; depth <= 6; depth++) {
      const up = '\\.\\./'.repeat(depth);
      blocks.push({
        files: [`${folder}/${'*/'.repeat(depth - 1)}*.{ts,tsx}`],
        rules: {
          'no-restricted-imports': ['error', { patterns: [{ regex: `^${up}(${denied.join('|')})/`, message }] }],
        },
      });
    }
  };
  LAYERS.forEach((folder, i) => {
    const denied = LAYERS.slice(i + 1).concat(CLIENTS);
    if (denied.length) forbid(folder, denied, `${folder}/ imports only leftwards: ${LAYERS.join(' <- ')} (see docs/architecture.md)`);
  });
  for (const c of CLIENTS) forbid(c, SERVER, `${c}/ is a client: it reaches Director over HTTP only, never by importing a server layer`);
  return blocks;
}

export default tseslint.config(
  { ignores: ['node_modules/**', '.tools/**', '.state/**', 'console/dist/**', 'eslint.config.js'] },
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/switch-exhaustiveness-check': 'error',
      '@typescript-eslint/no-misused-promises': ['error', { checksVoidReturn: { arguments: false } }],
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/restrict-template-expressions': ['error', { allowNumber: true, allowBoolean: true }],
      // Fastify plugins and hooks are async by contract, whether or not they await.
      '@typescript-eslint/require-await': 'off',
    },
  },
  ...boundaries(),
  {
    files: ['test/**', 'bench/**'],
    rules: {
      '@typescript-eslint/no-non-null-assertion': 'off',
      '@typescript-eslint/no-unsafe-assignment': 'off',
      '@typescript-eslint/no-unsafe-member-access': 'off',
    },
  },
);
