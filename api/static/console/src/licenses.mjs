// Prints the licence of every npm package that esbuild put into the bundle (from out/meta.json).
import { readFileSync, readdirSync, existsSync } from 'node:fs';
import { join } from 'node:path';

const meta = JSON.parse(readFileSync('out/meta.json', 'utf8'));
const roots = new Set();
for (const input of Object.keys(meta.inputs)) {
  const match = input.match(/^(.*node_modules\/(?:@[^/]+\/)?[^/]+)\//);
  if (match) roots.add(match[1]);
}
const out = ['Third-party software bundled in graphiql.js and graphiql.css (the mallpoints operators\' console).',
  'Each package is listed with its version and the text of its licence file.', ''];
for (const root of [...roots].sort()) {
  const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
  const file = readdirSync(root).find(name => /^(licen[cs]e|copying)(\.|$)/i.test(name));
  out.push('='.repeat(78), `${pkg.name} ${pkg.version} (${pkg.license || 'see below'})`, '='.repeat(78));
  if (file) out.push(readFileSync(join(root, file), 'utf8').trim());
  else out.push(`The package ships no licence file; its package.json declares "${pkg.license}".`
    + (pkg.repository ? ` Source: ${typeof pkg.repository === 'string' ? pkg.repository : pkg.repository.url}` : ''));
  out.push('');
}
process.stdout.write(out.join('\n') + '\n');
