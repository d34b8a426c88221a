import json,glob,sys,statistics as st
d=sys.argv[1]
rows={}
for f in sorted(glob.glob(d+'/*.json')):
    v,n,i=f.split('/')[-1][:-5].split('-')
    j=json.load(open(f))
    rows.setdefault((int(n),int(i)),{})[v]=(j['server']['cpu_us_per_viewer_frame'],j['viewers']['frame_age_ms']['p99'],j['viewers']['fps']['mean'],j['load_cpu_percent'])
print('| viewers | pair | old CPU µs/viewer-frame | new | new/old | old p99 age ms | new | new/old |')
print('|---|---|---|---|---|---|---|---|')
agg={}
for (n,i),r in sorted(rows.items()):
    if 'old' not in r or 'new' not in r: continue
    o,nw=r['old'],r['new']
    print(f'| {n} | {i} | {o[0]:.2f} | {nw[0]:.2f} | {nw[0]/o[0]:.3f} | {o[1]:.2f} | {nw[1]:.2f} | {nw[1]/o[1]:.3f} |')
    agg.setdefault(n,[]).append((nw[0]/o[0],nw[1]/o[1],o[0],nw[0],o[1],nw[1]))
for n,l in sorted(agg.items()):
    print(f'viewers {n}: median ratio CPU {st.median(x[0] for x in l):.3f}, p99 age {st.median(x[1] for x in l):.3f}; sum-ratio CPU {sum(x[3] for x in l)/sum(x[2] for x in l):.3f}, p99 {sum(x[5] for x in l)/sum(x[4] for x in l):.3f}')
