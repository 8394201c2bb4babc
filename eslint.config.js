// Lint (npm run lint, run by .ci/run): eslint's and typescript-eslint's recommended rules, with
// type information off (fast; tsc --noEmit with strict + noUnused* is the type check).
import js from '@eslint/js'
import tseslint from 'typescript-eslint'

export default tseslint.config(
  // bench/client-suites/harness/ is patched into other projects' test suites (their CommonJS)
  { ignores: ['dist/**', 'node_modules/**', 'tmp/**', 'bench/client-suites/harness/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    files: ['**/*.ts'],
    rules: {
      // protocol and tree code reads untyped JSON from libpg-query and the wire; `any` is confined, not banned
      '@typescript-eslint/no-explicit-any': 'off',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrors: 'none' }],
      // a control character in a regex is how a protocol byte is matched
      'no-control-regex': 'off',
    },
  },
)
