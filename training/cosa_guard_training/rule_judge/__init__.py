"""The rule judge trainer: data builder, embedding cache, interaction head (`cosa-guard train rules`)."""
